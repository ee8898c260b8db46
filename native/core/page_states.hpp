// Internal: the per-page state machine of one concurrent compaction, and the only code that changes a page's state.
// Async-signal-safe: lock-free atomics only (and, with the check on, write(2) + abort(2) on an illegal transition).
#pragma once

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <unistd.h>

#if !defined(NDEBUG) && !defined(COMPACTOR_CHECK_PAGE_STATES)
#define COMPACTOR_CHECK_PAGE_STATES 1
#endif

namespace compactor::detail {

// A to-space page's state. The values are ART's (runtime/gc/collector/mark_compact.h, MarkCompact::PageState):
//   kUnprocessed = 0, kProcessing = 1, kProcessed = 2, kProcessingAndMapping = 3, kMutatorProcessing = 4,
//   kProcessedAndMapping = 5, kProcessedAndMapped = 6.
// Only the states something here reads are kept: kProcessed, kProcessingAndMapping and kProcessedAndMapping
// would only be stored (ART needs them for its MINOR-fault mode and for mapping a batch in several steps; here a
// GC page goes from kProcessing straight to kProcessedAndMapped once its batch's ioctl returned, and a waiter
// treats every state but kProcessedAndMapped alike). The order is important, as in ART: a page's state only
// grows, kUnprocessed is 0 and kProcessedAndMapped is the largest value.
enum class PageState : uint8_t {
    kUnprocessed = 0,          // nobody has claimed the to-space page yet
    kProcessing = 1,           // the GC thread claimed it, to compact it into its current run
    kMutatorProcessing = 4,    // a mutator (SIGBUS handler) or the fault thread claimed it
    kProcessedAndMapped = 6,   // installed: accesses no longer fault (ART: "for SIGBUS")
};

// Every page's state, and every transition:
//   kUnprocessed --try_claim_for_gc-------> kProcessing        --mark_mapped--> kProcessedAndMapped
//   kUnprocessed --try_claim_for_mutator--> kMutatorProcessing --mark_mapped--> kProcessedAndMapped
// Memory orders:
//  - claims are compare-and-swaps, acq_rel: exactly one thread wins a page and owns it until it marks it mapped;
//    the acquire half orders the owner's reads of the from-space after its claim, the release half publishes the
//    claim to the threads that then wait on the page.
//  - mark_mapped is a release store and every reader (load, is_mapped) an acquire load: a thread that sees
//    kProcessedAndMapped also sees everything the installer did before, in particular that its compaction has
//    finished reading the from-space — the GC thread relies on this before it releases from-space pages (the
//    reclaim boundary), and waiters before they touch the page or report it done.
class PageStates {
public:
    explicit PageStates(uint64_t num_pages) : states_(new std::atomic<uint8_t>[num_pages]), num_pages_(num_pages) {
        for (uint64_t i = 0; i < num_pages; ++i) states_[i].store(raw(PageState::kUnprocessed), std::memory_order_relaxed);
    }

    PageState load(uint64_t page) const {
        return static_cast<PageState>(states_[page].load(std::memory_order_acquire));
    }
    bool is_mapped(uint64_t page) const { return load(page) == PageState::kProcessedAndMapped; }

    // The GC thread claims `page` for its run; false when another thread owns it already.
    bool try_claim_for_gc(uint64_t page) { return try_claim(page, PageState::kProcessing); }

    // A mutator or the fault thread claims `page` to resolve its fault; false when another thread owns it.
    bool try_claim_for_mutator(uint64_t page) {
        return load(page) == PageState::kUnprocessed && try_claim(page, PageState::kMutatorProcessing);
    }

    // The owner of `page` installed it.
    void mark_mapped(uint64_t page) {
#if COMPACTOR_CHECK_PAGE_STATES
        const auto old = static_cast<PageState>(
            states_[page].exchange(raw(PageState::kProcessedAndMapped), std::memory_order_acq_rel));
        if (old != PageState::kProcessing && old != PageState::kMutatorProcessing)
            illegal_transition("page state: mark_mapped of a page nobody had claimed\n");
#else
        states_[page].store(raw(PageState::kProcessedAndMapped), std::memory_order_release);
#endif
    }

    uint64_t size() const { return num_pages_; }

private:
    static uint8_t raw(PageState s) { return static_cast<uint8_t>(s); }

    bool try_claim(uint64_t page, PageState to) {
        uint8_t expected = raw(PageState::kUnprocessed);
        return states_[page].compare_exchange_strong(expected, raw(to), std::memory_order_acq_rel);
    }

#if COMPACTOR_CHECK_PAGE_STATES
    [[noreturn]] static void illegal_transition(const char* what) {
        size_t n = 0;
        while (what[n]) ++n;
        if (::write(2, what, n) < 0) {}
        std::abort();
    }
#endif

    std::unique_ptr<std::atomic<uint8_t>[]> states_;
    uint64_t num_pages_;
};

}  // namespace compactor::detail
