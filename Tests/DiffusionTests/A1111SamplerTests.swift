import Checkpoints
import Foundation
import Testing
import TestSupport
@testable import Diffusion
import Models
import Tensors

/// A1111's samplers against k-diffusion driven as A1111 drives it
/// (Tools/reference/make_a1111_sampler_fixtures.py): every sampler × schedule type with the CPU
/// generator, every sampler with the GPU (philox) one, the SDE samplers (Brownian-tree noise) with
/// philox on every schedule type too, and ENSD on two ancestral samplers and DPM++ SDE.
@Suite("A1111's samplers and schedules", .serialized)
struct A1111SamplerTests {
    static let model = try? StableDiffusionModel.load(Fixtures.path("tiny-sd"), vaeEncoder: false)
    static let cases: [String] = {
        let dir = Fixtures.path("a1111")
        return ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { $0.hasSuffix(".safetensors") }.sorted()
    }()

    @Test("final latents within 1e-4 × max of the oracle, sigma lists within 1e-6, timesteps within 1e-5", arguments: cases)
    func parity(_ file: String) throws {
        let golden = try SafeTensorsFile(path: Fixtures.path("a1111/\(file)"))
        let m = golden.metadata
        let model = try #require(Self.model)
        var s = GenerationSettings(prompt: m["prompt"]!)
        s.negativePrompt = m["negative_prompt"]!
        s.seed = UInt64(m["seed"]!)!
        s.steps = Int(m["steps"]!)!
        s.guidance = Float(m["guidance"]!)!
        s.width = 64
        s.height = 64
        s.rng = RNGKind(rawValue: m["rng"]!)!
        let sampler = try #require(try A1111Sampler.named(m["sampler"]!))
        s.a1111 = A1111Sampling(sampler: sampler, schedule: try KSchedule(parsing: m["schedule"]!), ensd: UInt64(m["ensd"]!)!)
        let calls = CallTimesteps()
        var timesApart: [(Float, Float)] = []
        if sampler.runsTimesteps {
            s.a1111!.unipc = try Self.unipcOptions(m["unipc"] ?? "{}")
        } else {
            let sigmas = KDiscreteSchedule.sd15.sigmas(for: sampler, schedule: s.a1111!.schedule, steps: s.steps)
            let ref = try golden.tensor("sigmas")
            #expect(sigmas.count == ref.count)
            let worstSigma = zip(sigmas, UnsafeBufferPointer(start: ref.pointer, count: ref.count)).map { abs($0 - $1) / max(abs($1), 1e-3) }.max() ?? 0
            #expect(worstSigma <= 1e-6, "\(file): sigmas off by \(worstSigma)")
            if sampler.brownianNoise {
                // The times the Brownian tree was asked for: the same once rounded to its 6 decimals.
                let ref = try golden.tensor("noise_times")
                let want = Array(UnsafeBufferPointer(start: ref.pointer, count: ref.count))
                let got = TextToImagePipeline.sdeNoiseTimes(sampler, sigmas).flatMap { [$0.0, $0.1] }
                #expect(got.count == want.count, "\(file): \(got.count / 2) noise draws, the oracle made \(want.count / 2)")
                // Within a few ulps (exp and log of another library); a wrong formula would be far off.
                let worstTime = zip(got, want).map { abs($0 - $1) / $1 }.max() ?? 0
                #expect(worstTime <= 1e-6, "\(file): noise times off by \(worstTime)")
                timesApart = zip(got, want).filter { BrownianTree.round6(Double($0)) != BrownianTree.round6(Double($1)) }
                if m["times"] != nil { #expect(timesApart.isEmpty, "\(file): noise times \(timesApart) round apart") }
            }
        }
        let out = try TextToImagePipeline(model: model).generate(s, observer: calls)
        if sampler.runsTimesteps {
            // Every model call's timestep, as the oracle's UNet was given it.
            let ref = try golden.tensor("timesteps")
            let want = Array(UnsafeBufferPointer(start: ref.pointer, count: ref.count))
            #expect(calls.timesteps.count == want.count, "\(file): \(calls.timesteps.count) model calls, the oracle made \(want.count)")
            #expect(calls.timesteps.count == sampler.evaluations(steps: s.steps))
            let worst = zip(calls.timesteps, want).map { abs($0 - $1) }.max() ?? 0
            #expect(worst <= 1e-5 * 1000, "\(file): timesteps off by \(worst)")
        }
        let err = relativeError(out.latent, try golden.tensor("final"))
        print("a1111 \(file): final latent relative error \(err)")
        if timesApart.isEmpty {
            #expect(err <= 1e-4, "\(file): \(err)")
        } else {
            // DPM++ SDE on the CPU oracle: torch's exp and log of 0-d tensors are MKL's, at times an ulp from
            // the correctly rounded ones the engine takes, and the Brownian tree rounds times to 6 decimals, so
            // a time can land on the next point of the tree. The `-crexp` golden is the same oracle run with
            // the correctly rounded times, held to 1e-4.
            withKnownIssue("noise times \(timesApart) round to other 6-decimal points than the oracle's (MKL's exp/log)", isIntermittent: true) {
                #expect(err <= 1e-4, "\(file): \(err)")
            }
        }
    }

    /// The oracle's UniPC keyword arguments (`{"order": 2, "skip": "logSNR"}`) as options.
    static func unipcOptions(_ json: String) throws -> UniPCOptions {
        let d = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        var o = UniPCOptions()
        if let v = d["variant"] as? String { o.variant = try #require(UniPCOptions.Variant(rawValue: v)) }
        if let v = d["skip"] as? String { o.skipType = try #require(UniPCOptions.SkipType(rawValue: v)) }
        if let v = d["order"] as? Int { o.order = v }
        if let v = d["lower_order_final"] as? Bool { o.lowerOrderFinal = v }
        return o
    }

    /// Records the timestep of every model call.
    final class CallTimesteps: GenerationObserver {
        var timesteps: [Float] = []
        func didStart(settings: GenerationSettings, evaluations: Int, timesteps: [Float], sigmas: [Float], initialLatent: Tensor) {}
        func didEncodePrompt(_ prompt: PromptChunker.Result, negative: PromptChunker.Result?, tokenizer: CLIPTokenizer) {}
        func willEvaluate(index: Int) {}
        func didEvaluate(_ record: EvaluationRecord) { timesteps.append(record.timestep) }
    }

    @Test("prompt editing with A1111's samplers: each model call on its own text")
    func editing() throws {
        let model = try #require(Self.model)
        var s = GenerationSettings(prompt: "a witch dancing")
        (s.seed, s.steps, s.width, s.height, s.guidance) = (9, 5, 64, 64, 50)  // the tiny model needs a strong pull to show its prompt
        s.a1111 = A1111Sampling(sampler: .heun)  // two calls a step: the text is picked per call, as A1111
        let plain = try TextToImagePipeline(model: model).generate(s).latent
        // An edit to the same text is the same run, bit for bit.
        var same = s
        same.prompt = "a [witch:witch:2] dancing"
        #expect(worstElement(try TextToImagePipeline(model: model).generate(same).latent, plain).error == 0)
        var edited = s
        edited.prompt = "a [witch:robot:2] dancing"
        #expect(relativeError(try TextToImagePipeline(model: model).generate(edited).latent, plain) > 1e-3)
        // A part of weight 0 changes nothing, whatever it says (the same batch of three either way).
        var and = s
        and.prompt = "a witch dancing AND a witch dancing:0"
        let zero = try TextToImagePipeline(model: model).generate(and).latent
        and.prompt = "a witch dancing AND a robot on the moon:0"
        #expect(worstElement(try TextToImagePipeline(model: model).generate(and).latent, zero).error == 0)
        and.prompt = "a witch dancing AND a robot on the moon:0.5"
        #expect(relativeError(try TextToImagePipeline(model: model).generate(and).latent, zero) > 1e-3)
    }

    @Test("names and refusals")
    func names() throws {
        #expect(try A1111Sampler.named("DPM++ 2M") == .dpmpp2m)
        #expect(try A1111Sampler.named("Nonsense") == nil)
        #expect(try A1111Sampler.named("DPM++ SDE") == .dpmppSDE)
        #expect(try A1111Sampler.named("DPM++ 2M SDE Heun") == .dpmpp2mSDEHeun)
        #expect(throws: SamplerError.self) { try A1111Sampler.named("DPM adaptive") }
        // A1111's automatic schedules: Karras for DPM++ SDE, Exponential for the multistep SDE samplers.
        #expect(A1111Sampling(sampler: .dpmppSDE).resolvedSchedule == .karras)
        #expect(A1111Sampling(sampler: .dpmpp3mSDE).resolvedSchedule == .exponential)
        #expect(try SamplerChoice.parse("DPM++ 2M SDE Karras", schedule: nil) == .a1111(A1111Sampling(sampler: .dpmpp2mSDE, schedule: .karras)))
        #expect(A1111Sampler.dpmppSDE.evaluations(steps: 10) == 19 && A1111Sampler.dpmpp3mSDE.evaluations(steps: 10) == 10)
        #expect(try A1111Sampler.named("UniPC") == .unipc)
        #expect(throws: SamplerError.self) { try SamplerChoice.parse("DDIM", schedule: "Karras") }
        // A1111's timesteps: 1000 // steps apart, + 1; 30 steps are 31 timesteps.
        #expect(A1111Timesteps.timesteps(steps: 20) == Array(stride(from: 1, through: 951, by: 50)))
        #expect(A1111Timesteps.timesteps(steps: 30).count == 31)
        #expect(A1111Sampler.ddim.evaluations(steps: 20) == 19 && A1111Sampler.plms.evaluations(steps: 20) == 20)
        #expect(try KSchedule(parsing: "Karras") == .karras)
        #expect(try KSchedule(parsing: "SGM Uniform") == .sgm_uniform)
        #expect(throws: SamplerError.self) { try KSchedule(parsing: "KL Optimal") }
        #expect(Self.cases.count >= 156)
    }
}
