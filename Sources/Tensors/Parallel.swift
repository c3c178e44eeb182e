import CKernels
import Foundation

/// Splits loops over the machine's cores: every kernel's, sgemm products included (OpenBLAS itself
/// runs on one thread, see BLAS).
public enum Parallel {
    /// Worker count: the cores this process may use.
    public static let workers: Int = max(1, ProcessInfo.processInfo.activeProcessorCount)

    /// Calls `body(range)` on disjoint chunks covering `0..<count`, in parallel when the work is
    /// large enough (`grain` = fewest iterations worth a thread).
    public static func forRanges(_ count: Int, grain: Int = 1, _ body: (Range<Int>) -> Void) {
        guard count > 0 else { return }
        let chunks = min(workers, max(1, count / max(grain, 1)))
        if chunks == 1 { body(0..<count); return }
        // What the caller runs with (a forced kernel level, KernelISA.withLevel; tuning knobs,
        // KernelTuning.with) holds on the workers too. Defaults need no binding.
        let forced = pd_forced_isa(), tuning = KernelTuning.current
        let plain = forced < 0 && tuning == KernelTuning()
        DispatchQueue.concurrentPerform(iterations: chunks) { c in
            let lo = count * c / chunks, hi = count * (c + 1) / chunks
            guard lo < hi else { return }
            if plain { body(lo..<hi); return }
            let previous = pd_forced_isa()
            pd_set_isa(forced)
            defer { pd_set_isa(previous) }
            KernelTuning.$current.withValue(tuning) { body(lo..<hi) }
        }
    }

    /// Calls `body(i)` for each `i` in `0..<count`, spread over the cores.
    public static func forEach(_ count: Int, grain: Int = 1, _ body: (Int) -> Void) {
        forRanges(count, grain: grain) { range in for i in range { body(i) } }
    }
}
