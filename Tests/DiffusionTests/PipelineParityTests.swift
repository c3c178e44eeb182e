import Checkpoints
import Foundation
import Testing
import TestSupport
@testable import Diffusion
import Imaging
import Models
import Tensors

/// Whole txt2img runs on tiny-sd against diffusers' StableDiffusionPipeline
/// (Tools/reference/make_pipeline_fixtures.py): every latent along the way, the final latent
/// (≤ 1e-3 × max|ref|) and the 8-bit image (mean |diff| ≤ 1 level). Every case runs with the
/// default kernels (Winograd 3×3 convolutions) and with the plain path (`--fast none`), to the
/// same bounds: that is what makes Winograd the default.
@Suite("Pipeline parity with diffusers", .serialized)
struct PipelineParityTests {
    /// The arithmetic each case runs with: the default kernels, then the plain im2col path.
    static let kernels: [FastMath] = [.default, []]
    static let models: [FastMath.RawValue: StableDiffusionModel] = {
        var m: [FastMath.RawValue: StableDiffusionModel] = [:]
        for k in kernels { m[k.rawValue] = try? StableDiffusionModel.load(Fixtures.path("tiny-sd"), vaeEncoder: false, fast: k) }
        return m
    }()

    final class Collector: GenerationObserver {
        var latents: [Tensor] = []
        func didStart(settings: GenerationSettings, evaluations: Int, timesteps: [Float], sigmas: [Float], initialLatent: Tensor) {
            latents = [initialLatent.copy()]
        }
        func didEvaluate(_ record: EvaluationRecord) { latents.append(record.latent.copy()) }
    }

    struct Outcome {
        let finalError: Float
        let worstStepError: Float
        let meanLevelDiff: Double
    }

    /// Runs the case in `file` and compares; returns the measured errors.
    static func run(_ file: String, rng: RNGKind = .cpu, embeddings: [PromptEmbedding] = [],
                    prompt: String? = nil, negative: String? = nil, kernels: FastMath) throws -> Outcome {
        let golden = try SafeTensorsFile(path: Fixtures.path("pipeline/\(file).safetensors"))
        let meta = golden.metadata
        let model = try #require(models[kernels.rawValue], "tiny-sd did not load")
        var s = GenerationSettings(prompt: prompt ?? meta["prompt"] ?? "")
        s.negativePrompt = negative ?? meta["negative_prompt"] ?? ""
        s.seed = UInt64(meta["seed"]!)!
        s.steps = Int(meta["steps"]!)!
        s.guidance = Float(meta["guidance_scale"]!)!
        s.sampler = try SamplerKind(parsing: meta["sampler"]!)
        s.width = Int(meta["width"]!)!
        s.height = Int(meta["height"]!)!
        s.rng = rng
        let collector = Collector()
        let out = try TextToImagePipeline(model: model).generate(s, embeddings: embeddings, observer: collector)

        let refLatents = try golden.tensor("latents")  // [E+1, 1, 4, h, w]
        #expect(collector.latents.count == refLatents.shape[0], "\(file): evaluations")
        var worstStep: Float = 0
        let n = collector.latents.first?.count ?? 0
        for (i, l) in collector.latents.enumerated() where i < refLatents.shape[0] {
            let ref = try Tensor(shape: l.shape, scalars: Array(UnsafeBufferPointer(start: refLatents.pointer + i * n, count: n)))
            worstStep = max(worstStep, relativeError(l, ref))
        }
        let final = try golden.tensor("final")
        expectClose(out.latent, final, relTol: 1e-3, "\(file) final latent (\(kernels))")

        let image = try RGBImage(tensor: out.image)
        let ref = try golden.tensor("image_u8")  // [1, 3, H, W] as float
        let (h, w) = (ref.shape[2], ref.shape[3])
        var total = 0.0
        for c in 0..<3 { for p in 0..<(h * w) { total += abs(Double(image.pixels[p * 3 + c]) - Double(ref.pointer[c * h * w + p])) } }
        let mean = total / Double(3 * h * w)
        #expect(mean <= 1, "\(file) (\(kernels)): mean 8-bit difference \(mean)")
        return Outcome(finalError: relativeError(out.latent, final), worstStepError: worstStep, meanLevelDiff: mean)
    }

    static func report(_ file: String, _ kernels: FastMath, _ o: Outcome) {
        print("parity \(file) [\(kernels)]: final \(o.finalError), worst step \(o.worstStepError), image \(o.meanLevelDiff) levels")
    }

    @Test("every sampler, CPU generator", arguments: SamplerKind.allCases, kernels)
    func sampler(_ kind: SamplerKind, _ kernels: FastMath) throws {
        Self.report(kind.rawValue, kernels, try Self.run(kind.rawValue, kernels: kernels))
    }

    @Test("negative prompts, no guidance, torch CUDA (philox) noise",
          arguments: [("ddim_negative", RNGKind.cpu), ("euler_a_negative", .cpu), ("ddim_noguidance", .cpu),
                      ("ddim_philox", .philox), ("dpmpp_2m_philox", .philox)], kernels)
    func variant(_ c: (file: String, rng: RNGKind), _ kernels: FastMath) throws {
        Self.report(c.file, kernels, try Self.run(c.file, rng: c.rng, kernels: kernels))
    }

    @Test("A1111 weighting and long prompts (reference: A1111's rule on diffusers' encoder)",
          arguments: ["euler_weighted", "euler_long"], kernels)
    func weighted(_ file: String, _ kernels: FastMath) throws {
        Self.report(file, kernels, try Self.run(file, kernels: kernels))
    }

    @Test("textual inversion: A1111 .pt, diffusers .bin, kohya .safetensors", arguments: kernels)
    func embeddings(_ kernels: FastMath) throws {
        let model = try #require(Self.models[kernels.rawValue])
        let files = ["corajr.pt", "winniecat.bin", "kokocat.safetensors"]
        let embeddings = try files.map {
            try EmbeddingLoader.load(Fixtures.path("pipeline/\($0)"), tokenizer: model.tokenizer, width: model.textEncoder.config.hiddenSize)
        }
        #expect(embeddings.map(\.trigger) == ["corajr", "<winniecat>", "kokocat"])
        #expect(embeddings.map(\.vectors.count) == [2, 1, 3])
        Self.report("euler_embeddings", kernels, try Self.run("euler_embeddings", embeddings: embeddings, kernels: kernels))
    }

    @Test("an embedding of the wrong width is a one-line error naming the file")
    func wrongWidth() throws {
        let tokenizer = CLIPTokenizer()
        do {
            _ = try EmbeddingLoader.load(Fixtures.path("checkpoints/a1111_embedding.pt"), tokenizer: tokenizer, width: 32)
            Issue.record("expected an error")
        } catch {
            #expect("\(error)".contains("a1111_embedding.pt") && "\(error)".contains("768") && !"\(error)".contains("\n"))
        }
    }
}
