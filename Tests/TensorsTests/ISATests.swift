import CKernels
import Foundation
import Testing
@testable import Tensors

@Suite("ISA levels")
struct ISATests {
    /// PAREIDOLIA_ISA caps the level, never raises it.
    @Test func capFromEnvironment() {
        let names: [String: KernelISA] = ["avx512": .avx512, "avx2": .avx2, "sse": .baseline, "scalar": .baseline, "baseline": .baseline]
        let asked = ProcessInfo.processInfo.environment["PAREIDOLIA_ISA"].flatMap { names[$0] } ?? .avx512
        #expect(KernelISA.supported == min(KernelISA.cpu, asked))
        #expect(KernelISA.environmentProblem == nil)
        #expect(KernelISA.current == KernelISA.supported)
        #expect(KernelISA.isCapped == (KernelISA.supported < KernelISA.cpu))
    }

    /// A forced level holds on the forcing thread and the workers Parallel lends it, and nowhere else.
    @Test func forcedLevelIsPerThread() {
        let seenElsewhere = Locked<[KernelISA]>([])
        KernelISA.withLevel(.baseline) { level in
            #expect(level == .baseline && KernelISA.current == .baseline)
            let onWorkers = NSLock()
            var workerLevels: [KernelISA] = []
            Parallel.forEach(8) { _ in
                onWorkers.lock(); workerLevels.append(KernelISA.current); onWorkers.unlock()
            }
            #expect(workerLevels.count == 8 && workerLevels.allSatisfy { $0 == .baseline })
            let done = DispatchSemaphore(value: 0)
            Thread {
                seenElsewhere.update { $0.append(KernelISA.current) }
                done.signal()
            }.start()
            done.wait()
        }
        #expect(seenElsewhere.value == [KernelISA.supported])
        #expect(KernelISA.current == KernelISA.supported)
        // Above what is supported: clamped.
        KernelISA.withLevel(.avx512) { #expect($0 == KernelISA.supported) }
    }

    /// Tuning knobs changed for one piece of work reach its workers and nothing else.
    @Test func tuningIsPerTask() {
        KernelTuning.with({ $0.conv.blockBytes = 123 }) {
            let lock = NSLock()
            var seen: [Int] = []
            Parallel.forEach(4) { _ in lock.lock(); seen.append(ConvTuning.current.blockBytes); lock.unlock() }
            #expect(seen == [123, 123, 123, 123])
            let done = DispatchSemaphore(value: 0)
            let elsewhere = Locked(0)
            Thread { elsewhere.update { $0 = ConvTuning.current.blockBytes }; done.signal() }.start()
            done.wait()
            #expect(elsewhere.value == ConvTuning().blockBytes)
        }
        #expect(ConvTuning.current == ConvTuning())
    }
}

/// A value shared with other threads, behind a lock.
final class Locked<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: T
    init(_ value: T) { stored = value }
    var value: T { lock.lock(); defer { lock.unlock() }; return stored }
    func update(_ body: (inout T) -> Void) { lock.lock(); body(&stored); lock.unlock() }
}
