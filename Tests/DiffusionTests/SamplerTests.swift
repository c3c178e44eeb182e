import Checkpoints
import Foundation
import Tensors
import TestSupport
import Testing
@testable import Diffusion

// Goldens: Tests/Fixtures/samplers.safetensors, written by Tools/reference/make_sampler_fixtures.py
// (diffusers 0.42.1 schedulers with SD 1.5's config, driven by a fake model; README section S).

private let fixtureSteps = [5, 20]
private let latentShape = [1, 4, 8, 6]

private func samplerFixture() throws -> SafeTensorsFile {
    try SafeTensorsFile(path: Fixtures.path("samplers.safetensors"))
}

/// The fixture's stand-in for the UNet: 0.1·x + 0.05·sin(x) + t/1000, elementwise in float32,
/// sin in double rounded once, t/1000 in double rounded once (as the Python script computes it).
private func fakeModel(_ x: Tensor, _ t: Float) -> Tensor {
    let c = Float(Double(t) / 1000)
    let y = Tensor(uninitializedShape: x.shape)
    for k in 0..<x.count {
        let v = x.pointer[k]
        y.pointer[k] = Float(0.1) * v + Float(0.05) * Float(sin(Double(v))) + c
    }
    return y
}

/// Entry `k` of a stacked [K, …] tensor, as a tensor of `shape`.
private func entry(_ stacked: Tensor, _ k: Int, shape: [Int]) throws -> Tensor {
    let n = shape.reduce(1, *)
    precondition((k + 1) * n <= stacked.count)
    return try Tensor(shape: shape, scalars: Array(UnsafeBufferPointer(start: stacked.pointer + k * n, count: n)))
}

/// |a − b| in units of b's ulp.
private func ulps(_ a: Float, _ b: Float) -> Float { abs(a - b) / b.ulp }

/// A run of `sampler` from the fixture's initial noise with the fake model; returns the
/// trajectory (E+1 latents). `noise(i)` is the ancestral noise of evaluation `i`.
private func replay(_ sampler: inout any Sampler, initNoise: Tensor,
                    noise: ((Int) throws -> Tensor)? = nil) throws -> [Tensor] {
    var x = scale(initNoise, sampler.initNoiseSigma)
    var trajectory = [x]
    let name = sampler.name, usesNoise = sampler.usesNoise
    for i in 0..<sampler.evaluations {
        let eps = fakeModel(sampler.scaleModelInput(x, evaluation: i), sampler.timesteps[i])
        var drawn = 0
        let current = x
        x = sampler.step(eps: eps, evaluation: i, sample: current, noise: {
            drawn += 1
            guard let noise else { Issue.record("\(name) drew noise"); return Tensor(zeros: current.shape) }
            return try! noise(i)
        })
        #expect(drawn == (usesNoise ? 1 : 0), "\(name) evaluation \(i) drew \(drawn) noises")
        trajectory.append(x)
    }
    return trajectory
}

@Suite("Samplers: diffusers schedulers with SD 1.5's config")
struct SamplerTests {
    @Test("Training schedule: betas and ᾱ bit-identical to diffusers, σ table within 1 ulp")
    func schedule() throws {
        let file = try samplerFixture()
        let s = NoiseSchedule.sd15
        let betas = try file.tensor("schedule/betas").scalars
        let alphas = try file.tensor("schedule/alphas_cumprod").scalars
        let sigmas = try file.tensor("schedule/sigmas").scalars
        #expect(betas.count == 1000 && alphas.count == 1000 && sigmas.count == 1000)
        #expect(zip(s.betas, betas).filter { $0.bitPattern != $1.bitPattern }.count == 0, "betas differ")
        #expect(zip(s.alphasCumprod, alphas).filter { $0.bitPattern != $1.bitPattern }.count == 0,
                "alphas_cumprod differ")
        // torch's float32 sqrt (MKL VML on x86) is not correctly rounded: ≤ 1 ulp apart.
        let worst = zip(s.sigmas, sigmas).map { ulps($0, $1) }.max() ?? 0
        let differing = zip(s.sigmas, sigmas).filter { $0 != $1 }.count
        #expect(worst <= 1, "σ table: worst \(worst) ulp")
        print("schedule: σ table differs from torch's in \(differing)/1000 entries, max \(worst) ulp")
        #expect(abs(s.alphasCumprod[0] - 0.99915) < 1e-6)
        #expect(abs(s.sigmas[999] - 14.614647) < 1e-5)
    }

    @Test("Timesteps, σ's and init_noise_sigma match diffusers", arguments: SamplerKind.allCases, fixtureSteps)
    func timeline(kind: SamplerKind, steps: Int) throws {
        let file = try samplerFixture()
        let prefix = "\(kind.rawValue)/\(steps)"
        let sampler = try makeSampler(kind, steps: steps)
        let timesteps = try file.tensor("\(prefix)/timesteps").scalars
        #expect(sampler.timesteps == timesteps, "\(prefix): timesteps \(sampler.timesteps), expected \(timesteps)")
        #expect(sampler.evaluations == kind.evaluations(steps: steps))
        #expect(sampler.name == kind.rawValue)
        let initSigma = try file.tensor("\(prefix)/init_noise_sigma").scalars[0]
        #expect(ulps(sampler.initNoiseSigma, initSigma) <= 1,
                "\(prefix): init_noise_sigma \(sampler.initNoiseSigma), expected \(initSigma)")
        if let expected = file.tensors["\(prefix)/sigmas"] != nil ? try file.tensor("\(prefix)/sigmas").scalars : nil {
            let actual = (0...sampler.evaluations).map { sampler.sigma(evaluation: $0) }
            #expect(actual.count == expected.count)
            let worst = zip(actual, expected).map { $1 == 0 ? abs($0) : ulps($0, $1) }.max() ?? 0
            #expect(worst <= 1, "\(prefix): σ's \(actual), expected \(expected)")
        }
    }

    @Test("Per-step latents match diffusers (fake model, ≤ 1e-5 × max|ref|)", arguments: SamplerKind.allCases, fixtureSteps)
    func trajectory(kind: SamplerKind, steps: Int) throws {
        let file = try samplerFixture()
        let prefix = "\(kind.rawValue)/\(steps)"
        var sampler = try makeSampler(kind, steps: steps)
        let reference = try file.tensor("\(prefix)/latents")
        let evaluations = sampler.evaluations
        #expect(reference.shape == [evaluations + 1] + latentShape)
        var noise: ((Int) throws -> Tensor)?
        if kind == .euler_a {
            let noises = try file.tensor("\(prefix)/noise")
            #expect(noises.shape == [evaluations] + latentShape)
            noise = { try entry(noises, $0, shape: latentShape) }
        }
        let actual = try replay(&sampler, initNoise: file.tensor("init_noise"), noise: noise)
        var worst: Float = 0
        for k in 0...evaluations {
            let expected = try entry(reference, k, shape: latentShape)
            expectClose(actual[k], expected, relTol: 1e-5, "\(prefix) latent \(k)")
            worst = max(worst, relativeError(actual[k], expected))
        }
        #expect(sampler.predictedOriginal != nil)
        print("sampler \(prefix): \(evaluations) evaluations, max relative error \(worst)")
    }

    @Test("Unknown sampler names give a one-line error naming the valid ones")
    func unknownName() throws {
        #expect(try makeSampler(named: "euler_a", steps: 10).kind == .euler_a)
        #expect(try SamplerKind(parsing: "DPMPP_2M_Karras") == .dpmpp_2m_karras)
        do {
            _ = try makeSampler(named: "k_euler", steps: 20)
            Issue.record("no error for an unknown sampler")
        } catch let error as SamplerError {
            let message = error.description
            #expect(!message.contains("\n"))
            #expect(message.contains("'k_euler'"))
            for kind in SamplerKind.allCases { #expect(message.contains(kind.rawValue), "\(message)") }
            #expect(message == "unknown sampler 'k_euler'; valid samplers: "
                + "pndm, ddim, euler, euler_a, dpmpp_2m, dpmpp_2m_karras, lms, heun")
        }
        #expect(throws: SamplerError.self) { try makeSampler(.euler, steps: 0) }
        #expect(throws: SamplerError.self) { try makeSampler(.euler, steps: 1001) }
    }

    @Test("Every sampler runs for 1, 2, 3, 4 and 50 steps with finite results", arguments: SamplerKind.allCases)
    func stepCounts(kind: SamplerKind) throws {
        let start = try Tensor(shape: [1, 4, 2, 3], scalars: (0..<24).map { Float(sin(Double($0) * 1.7)) })
        for steps in [1, 2, 3, 4, 50] {
            var sampler = try makeSampler(kind, steps: steps)
            #expect(sampler.evaluations == kind.evaluations(steps: steps), "\(kind) \(steps)")
            #expect(sampler.timesteps.allSatisfy { $0 >= 0 && $0 <= 999 && $0 == $0.rounded() })
            let trajectory = try replay(&sampler, initNoise: start, noise: { i in
                try Tensor(shape: start.shape, scalars: (0..<24).map { Float(cos(Double($0 + i))) })
            })
            let finite = trajectory.last!.scalars.allSatisfy { $0.isFinite }
            #expect(finite, "\(kind) \(steps)")
        }
    }

    @Test("Known timesteps (formats-rng-schedulers.md §6)")
    func knownTimesteps() throws {
        #expect(try makeSampler(.ddim, steps: 20).timesteps.first == 951)
        #expect(try makeSampler(.ddim, steps: 50).timesteps.first == 981)
        #expect(try makeSampler(.ddim, steps: 50).timesteps.last == 1)
        #expect(Array(try makeSampler(.pndm, steps: 50).timesteps.prefix(4)) == [981, 961, 961, 941])
        let euler = try makeSampler(.euler, steps: 20)
        #expect(abs(euler.sigma(evaluation: 0) - 11.0283) < 1e-3)
        #expect(abs(euler.initNoiseSigma - 11.0736) < 1e-3)
        let karras = try makeSampler(.dpmpp_2m_karras, steps: 20)
        #expect(abs(karras.sigma(evaluation: 1) - 11.7254) < 1e-3)
        #expect(karras.sigma(evaluation: 20) == 0)
    }
}
