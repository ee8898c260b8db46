"""python -m compactor.device {emulator start|stop|status, probe SERIAL}"""

from __future__ import annotations

import argparse
import json
import sys
from typing import List, Optional


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m compactor.device")
    sub = ap.add_subparsers(dest="cmd", required=True)
    em = sub.add_parser("emulator", help="an emulated arm64 device (qemu) reachable over ADB on 127.0.0.1")
    emsub = em.add_subparsers(dest="action", required=True)
    st = emsub.add_parser("start")
    st.add_argument("--page-size", choices=["4k", "16k"], default="4k")
    st.add_argument("--kernel", choices=["6.12", "6.1"], default="6.12")
    st.add_argument("--port", type=int)
    st.add_argument("--memory", type=int, default=1024, help="guest memory in MiB")
    sp = emsub.add_parser("stop")
    sp.add_argument("--port", type=int)
    emsub.add_parser("status")
    pr = sub.add_parser("probe", help="what a device's kernel offers (runs compactor-runner --probe there)")
    pr.add_argument("serial", nargs="?")
    args = ap.parse_args(argv)

    from .adb import DeviceError
    from .emulator import EmulatorError

    try:
        if args.cmd == "probe":
            from .session import DeviceSession
            s = DeviceSession(args.serial)
            try:
                print(json.dumps(s.environment(), indent=2))
            finally:
                s.close()
            return 0
        from . import emulator
        if args.action == "start":
            state = emulator.start(args.kernel, args.page_size, args.port, args.memory,
                                   log=lambda m: print(m, file=sys.stderr))
            print(json.dumps(state))
            print(f"ready: python -m compactor.bench --device {state['serial']}", file=sys.stderr)
        elif args.action == "stop":
            print(f"stopped {emulator.stop(args.port)} emulated device(s)")
        else:
            print(json.dumps(emulator.status(), indent=2))
        return 0
    except (DeviceError, EmulatorError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
