// Signals in the fault path: the `signal` option sends an app's usual signals to every mutator during a collection
// (a profiler's SIGPROF, a timer's SIGALRM, a SIGUSR1 whose handler reads the heap), and the SIGBUS handler's
// signal discipline lives here: it blocks every asynchronous signal while it owns a page (claim, compact, ioctl,
// state store: a handler touching the heap then could fault on the very page this thread holds, or reuse its
// compaction buffer), and reopens the interrupted code's mask while it waits for a page another thread owns.
#include <cerrno>
#include <csignal>
#include <cstring>
#include <ctime>
#include <sys/syscall.h>
#include <unistd.h>

#include "compaction_context.hpp"
#include "compactor/object_layout.hpp"

namespace compactor::detail {

using namespace layout;

namespace {

std::atomic<Context*> g_signal_ctx{nullptr};
struct sigaction g_previous;  // the handler the collection replaced: a signal for anyone else goes there

// Sets the calling thread's signal mask: the system call itself (sigprocmask, unlike pthread_sigmask, is on POSIX's
// async-signal-safe list; on Linux both set the calling thread's mask).
void set_thread_mask(const sigset_t* set, sigset_t* old) { syscall(SYS_rt_sigprocmask, SIG_SETMASK, set, old, _NSIG / 8); }

// A signal that reached a thread this collection does not run (a test harness's SIGALRM, a profiler's SIGPROF for
// another thread): handed to the handler the collection replaced, if it was one.
void forward(int sig, siginfo_t* si, void* uc) { call_previous(g_previous, sig, si, uc); }

int signal_number(AppSignal s) {
    switch (s) {
        case AppSignal::Sigprof: return SIGPROF;
        case AppSignal::Sigalrm: return SIGALRM;
        case AppSignal::Sigusr1: return SIGUSR1;
        case AppSignal::None: break;
    }
    return 0;
}

// The SIGUSR1 handler's heap access: a root object's header, read as a mutator would (it faults like one), and
// checked. A header that is not an object's in a run that was not aborted is a corrupt heap seen by the app.
void read_a_root(Context& ctx, ThreadCtx& tc) {
    if (ctx.num_roots == 0) return;
    const uint64_t off = ctx.roots[tc.signal_rng.next() % ctx.num_roots];
    if (off == kNullRef || off % 8 || off + kMinObjectSize > ctx.heap_size) return;
    const ObjectHeader h = unpack_header(__atomic_load_n(reinterpret_cast<const uint64_t*>(ctx.to_space + off),
                                                         __ATOMIC_RELAXED));
    tc.counters.signal_heap_reads += 1;
    const bool object = h.klass == kClassObject && h.size >= min_object_size(h.num_refs) && off + h.size <= ctx.heap_size;
    if (!object && !ctx.abort.load(std::memory_order_acquire))  // an aborted run's pages read as zeros
        request_abort(ctx, EBADMSG, "a mutator's SIGUSR1 handler read a root whose header is not an object's");
}

void on_app_signal(int sig, siginfo_t* si, void* uc) {
    const int saved_errno = errno;
    Context* ctx = g_signal_ctx.load(std::memory_order_acquire);
    ThreadCtx* tc = thread_ctx();
    if (!ctx || !tc || tc->is_gc) {
        forward(sig, si, uc);
    } else {
        const sig_atomic_t outer = tc->in_app_signal;
        tc->in_app_signal = 1;
        tc->counters.signals_handled += 1;
        if (tc->in_fault_wait) tc->counters.signals_in_fault_wait += 1;
        if (sig == SIGPROF) {  // a profiler's sample: the clock and the interrupted thread's CPU time
            timespec ts;
            clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
        } else if (sig == SIGUSR1 && tc->may_touch_heap) {
            read_a_root(*ctx, *tc);
        }
        tc->in_app_signal = outer;
    }
    errno = saved_errno;
}

}  // namespace

bool call_previous(const struct sigaction& previous, int sig, siginfo_t* si, void* uc) {
    if (previous.sa_flags & SA_SIGINFO) {
        if (!previous.sa_sigaction) return false;
        previous.sa_sigaction(sig, si, uc);
        return true;
    }
    if (previous.sa_handler == SIG_DFL || previous.sa_handler == SIG_IGN) return false;
    previous.sa_handler(sig);
    return true;
}

void fill_async_signals(sigset_t* set) {
    sigfillset(set);  // glibc leaves out its own internal signals
    for (int s : {SIGBUS, SIGSEGV, SIGILL, SIGFPE, SIGTRAP, SIGSYS, SIGABRT}) sigdelset(set, s);
}

void SignalWindow::open() {
    if (open_ || !tc_ || !tc_->interrupted_mask) return;
    was_in_wait_ = tc_->in_fault_wait;
    tc_->in_fault_wait = 1;  // before unmasking: signals deferred until now arrive as soon as the mask opens
    set_thread_mask(tc_->interrupted_mask, &saved_);
    open_ = true;
}

SignalWindow::~SignalWindow() {
    if (!open_) return;
    set_thread_mask(&saved_, nullptr);  // closed first: a signal until then still counts as in the wait
    tc_->in_fault_wait = was_in_wait_;  // a nested handler's wait ends inside an outer one's
}

void AppSignals::start() {
    const CollectorConfig& cfg = ctx_.cfg;
    signo_ = signal_number(cfg.signal);
    if (!signo_ || cfg.mutators == 0) return;
    g_signal_ctx.store(&ctx_, std::memory_order_release);
    struct sigaction sa;
    std::memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_app_signal;
    // A timer's SIGALRM interrupts system calls (EINTR); a profiler's and the app's restart them.
    sa.sa_flags = SA_SIGINFO | (signo_ == SIGALRM ? 0 : SA_RESTART);
    fill_async_signals(&sa.sa_mask);
    sigaction(signo_, nullptr, &g_previous);  // read before ours is live: a forward never sees it empty
    sigaction(signo_, &sa, nullptr);
    installed_ = true;
    source_ = std::thread([this] { Run(); });
}

// Every 1/signal_hz seconds, one signal to each running mutator (a late tick is not made up for in a burst). Sleeps
// in slices of at most kSlice, so that stop() never waits for a slow rate's next tick.
void AppSignals::Run() {
    constexpr uint64_t kSlice = 2000000;
    const uint64_t period = static_cast<uint64_t>(1e9 / ctx_.cfg.signal_hz);
    const int pid = static_cast<int>(getpid());
    uint64_t next = now_ns();
    while (!stop_.load(std::memory_order_acquire)) {
        next += period;
        for (uint64_t now = now_ns(); now < next && !stop_.load(std::memory_order_acquire); now = now_ns()) {
            const uint64_t until = next - now > kSlice ? now + kSlice : next;
            timespec at{static_cast<time_t>(until / 1000000000ull), static_cast<long>(until % 1000000000ull)};
            clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &at, nullptr);
        }
        if (stop_.load(std::memory_order_acquire)) break;
        for (unsigned i = 0; i < ctx_.cfg.mutators; ++i) {
            const int tid = ctx_.mutator_tids[i].load(std::memory_order_acquire);
            if (tid > 0 && syscall(SYS_tgkill, pid, tid, signo_) == 0) sent_ += 1;
        }
        const uint64_t now = now_ns();
        if (now > next + period) next = now;
    }
}

void AppSignals::stop() {
    if (!installed_) return;
    stop_.store(true, std::memory_order_release);
    if (source_.joinable()) source_.join();
    // Called once the mutators are joined: nothing is pending for a live thread when the previous handler (for
    // SIGUSR1 the default action, which ends the process) comes back.
    sigaction(signo_, &g_previous, nullptr);
    g_signal_ctx.store(nullptr, std::memory_order_release);
    installed_ = false;
}

}  // namespace compactor::detail
