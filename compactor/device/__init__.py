"""Running the benchmark's plans on an arm64 device over ADB (adb-shell), and an emulated device for tests."""

from .adb import Device, DeviceError

__all__ = ["Device", "DeviceError"]
