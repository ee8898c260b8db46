#include "compactor/install_floor.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <functional>
#include <memory>
#include <sys/ioctl.h>
#include <sys/mman.h>

#include "compactor/errors.hpp"
#include "compactor/mapping.hpp"
#include "compactor/uffd.hpp"
#include "measure_helpers.hpp"

namespace compactor {

namespace {

using detail::now_s;

struct Region {
    Mapping dst, src;
};

void must(const IoResult& r, const char* what) { detail::must(r, "install floor", what); }

}  // namespace

std::vector<FloorMeasurement> measure_install_floor(uint64_t pages, unsigned repetitions) {
    const uint64_t ps = page_size();
    const uint64_t len = pages * ps;
    Userfaultfd uffd(0, true, true);
    const bool has_move = uffd.available() & UFFD_FEATURE_MOVE;
    std::vector<uint8_t> hot(ps, 0x5a);

    struct Entry {
        std::string name, description;
        uint64_t per_call;
        bool needs_move;
        bool src_populated;  // populate src before timing
        std::function<void(Region&)> body;
    };
    auto reg = [&](Region& r) {
        uint64_t io = 0;
        must(uffd.register_range(r.dst.address(), len, UFFDIO_REGISTER_MODE_MISSING, &io), "REGISTER");
    };
    auto per_call_loop = [&](uint64_t per_call, bool move, bool raw) {
        return [&, per_call, move, raw](Region& r) {
            for (uint64_t off = 0; off < len; off += per_call * ps) {
                const uint64_t n = std::min(per_call * ps, len - off);
                if (raw) {
                    if (move) {
                        uffdio_move m{r.dst.address() + off, r.src.address() + off, n, 0, 0};
                        if (::ioctl(uffd.fd(), UFFDIO_MOVE, &m) != 0) must({0, errno}, "MOVE (raw)");
                    } else {
                        uffdio_copy c{r.dst.address() + off, r.src.address() + off, n, 0, 0};
                        if (::ioctl(uffd.fd(), UFFDIO_COPY, &c) != 0) must({0, errno}, "COPY (raw)");
                    }
                } else {
                    must(move ? uffd.move(r.dst.address() + off, r.src.address() + off, n, 0)
                              : uffd.copy(r.dst.address() + off, r.src.address() + off, n, 0),
                         move ? "MOVE" : "COPY");
                }
            }
        };
    };
    std::vector<Entry> entries = {
        {"memcpy", "memcpy of a hot page into a populated page", 1, false, true,
         [&](Region& r) {
             for (uint64_t off = 0; off < len; off += ps) std::memcpy(r.src.data() + off, hot.data(), ps);
         }},
        {"first_touch", "first-touch write of a fresh page (fault + allocate + copy)", 1, false, false,
         [&](Region& r) {
             for (uint64_t off = 0; off < len; off += ps) std::memcpy(r.src.data() + off, hot.data(), ps);
         }},
        {"wake", "syscall floor: UFFDIO_WAKE with no waiter", 1, false, false,
         [&](Region& r) {
             for (uint64_t off = 0; off < len; off += ps) must(uffd.wake(r.dst.address() + off, ps), "WAKE");
         }},
        {"copy_1", "UFFDIO_COPY, 1 page per ioctl", 1, false, true, per_call_loop(1, false, false)},
        {"copy_1_raw", "UFFDIO_COPY, 1 page per ioctl, plain C loop", 1, false, true, per_call_loop(1, false, true)},
        {"copy_batch", "UFFDIO_COPY, the whole region in one ioctl", pages, false, true, per_call_loop(pages, false, false)},
        {"zeropage_1", "UFFDIO_ZEROPAGE, 1 page per ioctl", 1, false, false,
         [&](Region& r) {
             for (uint64_t off = 0; off < len; off += ps) must(uffd.zeropage(r.dst.address() + off, ps, 0), "ZEROPAGE");
         }},
        {"move_1", "UFFDIO_MOVE, 1 page per ioctl, recycled (populated) source", 1, true, true, per_call_loop(1, true, false)},
        {"move_1_raw", "UFFDIO_MOVE, 1 page per ioctl, plain C loop", 1, true, true, per_call_loop(1, true, true)},
        {"move_batch_16", "UFFDIO_MOVE, 16 pages per ioctl", 16, true, true, per_call_loop(16, true, false)},
        {"move_batch_64", "UFFDIO_MOVE, 64 pages per ioctl (the collector's default batch)", 64, true, true,
         per_call_loop(64, true, false)},
        {"move_batch_512", "UFFDIO_MOVE, 512 pages per ioctl", 512, true, true, per_call_loop(512, true, false)},
        {"move_batch_512_busy_sibling",
         "UFFDIO_MOVE, 512 pages per ioctl, while another thread of this process reads memory", 512, true,
         true, per_call_loop(512, true, false)},
        {"move_batch_64_yielding_sibling",
         "UFFDIO_MOVE, 64 pages per ioctl, while another thread of this process calls sched_yield (as SIGBUS waiters back off)",
         64, true, true, per_call_loop(64, true, false)},
        {"copy_batch_64_yielding_sibling",
         "UFFDIO_COPY, 64 pages per ioctl, while another thread of this process calls sched_yield", 64, false, true,
         per_call_loop(64, false, false)},
        // A fresh page above the post-compact end, as an allocating mutator's first touch needs it, followed by that
        // mutator's first store into it: the three ways the collector installs one.
        {"fresh_zeropage", "fresh page: UFFDIO_ZEROPAGE, then the first store (a write fault allocates the page)", 1,
         false, false,
         [&](Region& r) {
             for (uint64_t off = 0; off < len; off += ps) {
                 must(uffd.zeropage(r.dst.address() + off, ps, 0), "ZEROPAGE");
                 *reinterpret_cast<volatile uint64_t*>(r.dst.data() + off) = 1;
             }
         }},
        {"fresh_zero_and_move", "fresh page: zero a recycled page, UFFDIO_MOVE it (ZeroAndMoveFreePage), store", 1,
         true, true,
         [&](Region& r) {
             for (uint64_t off = 0; off < len; off += ps) {
                 std::memset(r.src.data() + off, 0, ps);
                 must(uffd.move(r.dst.address() + off, r.src.address() + off, ps, 0), "MOVE");
                 *reinterpret_cast<volatile uint64_t*>(r.dst.data() + off) = 1;
             }
         }},
        {"fresh_zero_and_copy", "fresh page: UFFDIO_COPY of a zeroed buffer, then the first store", 1, false, false,
         [&](Region& r) {
             std::memset(r.src.data(), 0, ps);
             for (uint64_t off = 0; off < len; off += ps) {
                 must(uffd.copy(r.dst.address() + off, r.src.address(), ps, 0), "COPY");
                 *reinterpret_cast<volatile uint64_t*>(r.dst.data() + off) = 1;
             }
         }},
        {"write_then_move", "write a fresh page, then UFFDIO_MOVE it (the page must be allocated)", 1, true, false,
         [&](Region& r) {
             for (uint64_t off = 0; off < len; off += ps) {
                 std::memcpy(r.src.data() + off, hot.data(), ps);
                 must(uffd.move(r.dst.address() + off, r.src.address() + off, ps, 0), "MOVE");
             }
         }},
    };
    std::vector<FloorMeasurement> out;
    for (const Entry& e : entries) {
        if (e.needs_move && !has_move) continue;
        FloorMeasurement m;
        m.name = e.name;
        m.description = e.description;
        m.pages_per_call = e.per_call;
        out.push_back(m);
    }
    for (unsigned rep = 0; rep < repetitions; ++rep) {
        size_t i = 0;
        for (const Entry& e : entries) {
            if (e.needs_move && !has_move) continue;
            Region r{Mapping(len), Mapping(len)};
            r.dst.hugepage(false);
            r.src.hugepage(false);
            r.src.dontfork();
            if (e.src_populated) std::memset(r.src.data(), 1, len);
            if (e.name != "memcpy" && e.name != "first_touch") reg(r);
            // A sibling thread keeps this mm live on another CPU, as mutators do during a GC: reading memory, or
            // calling sched_yield as mutators waiting in SIGBUS handlers do.
            std::unique_ptr<detail::SiblingThread> sibling;
            if (e.name.find("busy_sibling") != std::string::npos)
                sibling = std::make_unique<detail::SiblingThread>(detail::SiblingThread::Kind::Busy);
            else if (e.name.find("yielding_sibling") != std::string::npos)
                sibling = std::make_unique<detail::SiblingThread>(detail::SiblingThread::Kind::Yielding);
            const double t0 = now_s();
            e.body(r);
            const double dt = now_s() - t0;
            sibling.reset();
            out[i].ns_per_page.push_back(dt * 1e9 / static_cast<double>(pages));
            if (e.name != "memcpy" && e.name != "first_touch") uffd.unregister_range(r.dst.address(), len);
            ++i;
        }
    }
    set_medians(out);
    return out;
}

void set_medians(std::vector<FloorMeasurement>& rows) {
    for (auto& m : rows) m.median_ns = detail::median(m.ns_per_page);
}

}  // namespace compactor
