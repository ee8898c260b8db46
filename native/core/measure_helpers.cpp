#include "measure_helpers.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <sched.h>
#include <string>

#include "compaction_context.hpp"  // pin_to
#include "compactor/errors.hpp"

namespace compactor::detail {

double now_s() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

void must(const IoResult& r, const char* context, const char* what) {
    if (!r.ok())
        throw UffdError(r.err, what, r.done, sys_message(std::string(context) + ": " + what, r.err));
}

double median(std::vector<double> values) {
    if (values.empty()) return 0;
    std::sort(values.begin(), values.end());
    const size_t n = values.size();
    return n % 2 ? values[n / 2] : 0.5 * (values[n / 2 - 1] + values[n / 2]);
}

SiblingThread::SiblingThread(Kind kind, int cpu) {
    thread_ = std::thread([this, kind, cpu] {
        pin_to(cpu);  // sched_setaffinity on the calling thread migrates it before returning
        // release: pairs with the acquire below, so the starter sees the thread pinned and running.
        running_.store(true, std::memory_order_release);
        if (kind == Kind::Busy) {
            uint8_t buffer[4096];
            for (size_t b = 0; b < sizeof buffer; ++b) buffer[b] = static_cast<uint8_t>(b);
            uint64_t sink = 0;  // reads memory, as a mutator does
            // relaxed: the flag carries no data; the join orders everything after it.
            while (!stop_.load(std::memory_order_relaxed)) {
                for (size_t b = 0; b < sizeof buffer; b += 64) sink += *static_cast<volatile uint8_t*>(&buffer[b]);
                heartbeat_.fetch_add(1, std::memory_order_relaxed);  // a liveness signal only: no data rides on it
            }
            asm volatile("" : : "r"(sink));
        } else if (kind == Kind::Sleeping) {
            while (!stop_.load(std::memory_order_relaxed)) {
                heartbeat_.fetch_add(1, std::memory_order_release);  // this sleep begins (nothing else rides on it)
                timespec ts{0, static_cast<long>(kSleepNs)};
                nanosleep(&ts, nullptr);
                wakes_.fetch_add(1, std::memory_order_release);
            }
        } else {
            while (!stop_.load(std::memory_order_relaxed)) {
                sched_yield();
                heartbeat_.fetch_add(1, std::memory_order_relaxed);
            }
        }
    });
    while (!running_.load(std::memory_order_acquire)) sched_yield();
}

SiblingThread::~SiblingThread() {
    stop_.store(true, std::memory_order_relaxed);
    thread_.join();
}

void SiblingThread::wait_running() const {
    const uint64_t seen = heartbeat_.load(std::memory_order_relaxed);
    while (heartbeat_.load(std::memory_order_relaxed) == seen) sched_yield();
}

uint64_t SiblingThread::wait_asleep() const {
    const uint64_t seen = heartbeat_.load(std::memory_order_acquire);
    while (heartbeat_.load(std::memory_order_acquire) == seen) sched_yield();
    // The count was bumped just before nanosleep: give the thread time to reach it and leave its CPU.
    const double until = now_s() + 20e-6;
    while (now_s() < until) {
    }
    return wakes_.load(std::memory_order_acquire);
}

InterruptRows read_interrupt_rows() {
    InterruptRows out;
    std::FILE* f = std::fopen("/proc/interrupts", "re");
    if (!f) return out;
    char line[8192];
    if (std::fgets(line, sizeof line, f)) {
        char* save = nullptr;
        for (char* tok = strtok_r(line, " \t\n", &save); tok; tok = strtok_r(nullptr, " \t\n", &save))
            if (std::strncmp(tok, "CPU", 3) == 0) out.cpus.push_back(std::atoi(tok + 3));
    }
    while (std::fgets(line, sizeof line, f)) {
        char* p = line;
        while (*p == ' ') ++p;
        std::vector<int64_t>* row = std::strncmp(p, "TLB:", 4) == 0 ? &out.tlb
                                    : std::strncmp(p, "CAL:", 4) == 0 ? &out.function_call : nullptr;
        if (!row) continue;
        p += 4;
        for (;;) {  // the row's description follows the per-CPU counts
            char* end = nullptr;
            const long long v = std::strtoll(p, &end, 10);
            if (end == p) break;
            row->push_back(v);
            p = end;
        }
    }
    std::fclose(f);
    return out;
}

int64_t InterruptRows::sum(const std::vector<int64_t>& row) {
    if (row.empty()) return -1;
    int64_t total = 0;
    for (const int64_t v : row) total += v;
    return total;
}

int64_t InterruptRows::on(const std::vector<int64_t>& row, int cpu) const {
    for (size_t i = 0; i < cpus.size() && i < row.size(); ++i)
        if (cpus[i] == cpu) return row[i];
    return -1;
}

std::vector<int> allowed_cpus() {
    cpu_set_t set;
    CPU_ZERO(&set);
    std::vector<int> cpus;
    if (sched_getaffinity(0, sizeof set, &set) != 0) return cpus;
    for (int c = 0; c < CPU_SETSIZE; ++c)
        if (CPU_ISSET(c, &set)) cpus.push_back(c);
    return cpus;
}

}  // namespace compactor::detail
