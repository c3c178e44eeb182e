import Foundation
import Testing
import TestSupport
@testable import Diffusion
import Models
@testable import Tensors

/// Kernel state is per task: two generations in one process, and kernel tests that force another
/// ISA level or other tuning meanwhile, give the bits each gives alone.
@Suite("Concurrent work")
struct ConcurrencyTests {
    struct Job {
        let precision: Precision
        let fast: FastMath
        let settings: GenerationSettings

        func run() throws -> TextToImagePipeline.Output {
            let model = try StableDiffusionModel.load(Fixtures.path("tiny-sd"), vaeEncoder: false, precision: precision, fast: fast)
            return try TextToImagePipeline(model: model).generate(settings)
        }
    }

    static func settings(_ sampler: SamplerKind, seed: UInt64, prompt: String) -> GenerationSettings {
        var s = GenerationSettings(prompt: prompt)
        s.sampler = sampler
        s.seed = seed
        s.steps = 3
        s.width = 64
        s.height = 96
        return s
    }

    /// Kernels a test would run at a forced level and other schedules, round after round, until
    /// told to stop: what used to change the kernels of everything running beside it.
    static func disturb(until done: @escaping () -> Bool) throws -> Int {
        let x = Tensor(uninitializedShape: [2, 32, 16, 12]), w = Tensor(uninitializedShape: [32, 32, 3, 3])
        for i in 0..<x.count { x.pointer[i] = Float((i * 7919) % 199) / 199 - 0.5 }
        for i in 0..<w.count { w.pointer[i] = Float((i * 104729) % 211) / 2110 - 0.05 }
        let q = Tensor(uninitializedShape: [2, 192, 64])
        for i in 0..<q.count { q.pointer[i] = Float((i * 31) % 97) / 97 - 0.5 }
        var rounds = 0
        repeat {
            for level in KernelISA.allCases where level <= KernelISA.supported {
                try KernelISA.withLevel(level) { _ in
                    try KernelTuning.with({
                        $0.conv.blockBytes = 1024
                        $0.attention.schedule = .sgemmAcrossCores
                        $0.winograd = WinogradTuning(blockBytes: 4096, minBlockTiles: 1, minInputChannels: 1, narrowColumns: 0)
                    }) {
                        _ = try conv2d(x, weight: w, bias: nil, stride: 1, padding: 1)
                        _ = try conv2dWinograd(x, weight: WinogradWeight(weight: w), bias: nil)
                        _ = try attention(q: q, k: q, v: q, heads: 4)
                        _ = try softmax(q)
                    }
                }
            }
            rounds += 1
        } while !done()
        return rounds
    }

    @Test("two generations at once, beside kernels at other levels, give the bits of each alone")
    func simultaneousGenerations() throws {
        let jobs = [
            Job(precision: .fp32, fast: [], settings: Self.settings(.euler_a, seed: 1887838105, prompt: "a witch and her black cat")),
            Job(precision: .fp16, fast: .winograd, settings: Self.settings(.dpmpp_2m, seed: 4069519546, prompt: "a robot dancing, mirror")),
        ]
        let alone = try jobs.map { try $0.run() }

        let shared = Shared(jobs: jobs.count)
        let group = DispatchGroup()
        for (i, job) in jobs.enumerated() {
            group.enter()
            Thread {
                defer { shared.update { $0.finished += 1 }; group.leave() }
                do {
                    let out = try job.run()
                    shared.update { $0.outputs[i] = out }
                } catch { shared.update { $0.errors.append("\(error)") } }
            }.start()
        }
        group.enter()
        Thread {
            defer { group.leave() }
            do {
                let n = try Self.disturb { shared.update { $0.finished == jobs.count } }
                shared.update { $0.rounds = n }
            } catch { shared.update { $0.errors.append("\(error)") } }
        }.start()
        group.wait()
        let (together, errors, rounds) = shared.update { ($0.outputs, $0.errors, $0.rounds) }

        #expect(errors.isEmpty, "\(errors)")
        #expect(rounds > 1, "the disturbing kernels ran \(rounds) rounds")
        for (i, out) in together.enumerated() {
            let out = try #require(out)
            let latentSame = out.latent.scalars == alone[i].latent.scalars
            let imageSame = out.image.scalars == alone[i].image.scalars
            #expect(latentSame && imageSame,
                    "job \(i): latent max diff \(maxAbsDifference(out.latent, alone[i].latent)), image \(maxAbsDifference(out.image, alone[i].image))")
        }
    }
}

/// What the threads of one test report, behind a lock.
private final class Shared: @unchecked Sendable {
    struct State {
        var outputs: [TextToImagePipeline.Output?]
        var errors: [String] = []
        var finished = 0, rounds = 0
    }
    private let lock = NSLock()
    private var state: State
    init(jobs: Int) { state = State(outputs: Array(repeating: nil, count: jobs)) }
    func update<R>(_ body: (inout State) -> R) -> R {
        lock.lock()
        defer { lock.unlock() }
        return body(&state)
    }
}

private func maxAbsDifference(_ a: Tensor, _ b: Tensor) -> Float {
    zip(a.scalars, b.scalars).reduce(0) { max($0, abs($1.0 - $1.1)) }
}
