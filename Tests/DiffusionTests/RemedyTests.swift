import Checkpoints
import Foundation
import Testing
import TestSupport
@testable import Diffusion
import Models
import Tensors

/// Bounded regional attention (`--separate`) against the same masks applied to diffusers with
/// attention processors (Tools/reference/make_remedy_fixtures.py), and the plain path untouched.
@Suite("Merge remedy: bounded regional attention", .serialized)
struct RemedyTests {
    static let model = try? StableDiffusionModel.load(Fixtures.path("tiny-sd"), vaeEncoder: false)

    final class Latents: GenerationObserver {
        var all: [Tensor] = []
        func didStart(settings: GenerationSettings, evaluations: Int, timesteps: [Float], sigmas: [Float], initialLatent: Tensor) {
            all = [initialLatent.copy()]
        }
        func didEvaluate(_ record: EvaluationRecord) { all.append(record.latent.copy()) }
    }

    static func settings(_ meta: [String: String]) throws -> GenerationSettings {
        var s = GenerationSettings(prompt: meta["prompt"]!)
        s.seed = UInt64(meta["seed"]!)!
        s.steps = Int(meta["steps"]!)!
        s.guidance = Float(meta["guidance"]!)!
        s.sampler = try SamplerKind(parsing: meta["sampler"]!)
        s.width = Int(meta["width"]!)!
        s.height = Int(meta["height"]!)!
        return s
    }

    @Test("final latents within 1e-4 of diffusers with the same masks", arguments: ["ddim", "euler", "wide-cross", "until"])
    func parity(_ name: String) throws {
        let golden = try SafeTensorsFile(path: Fixtures.path("remedy/\(name).safetensors"))
        let meta = golden.metadata
        let model = try #require(Self.model)
        var s = try Self.settings(meta)
        let boxes = try JSONSerialization.jsonObject(with: Data(meta["boxes"]!.utf8)) as! [[NSNumber]]
        var sep = Separation(subjects: meta["subjects"]!.split(separator: ",").map(String.init), boxes: boxes.map { $0.map(\.floatValue) })
        sep.until = Float(meta["until"]!)!
        sep.stage = Separation.Stage(rawValue: meta["stage"]!)!
        s.separation = sep
        let latents = Latents()
        let out = try TextToImagePipeline(model: model).generate(s, observer: latents)
        let ref = try golden.tensor("final")  // [1, 4, h, w]
        let err = worstElement(out.latent, ref).error
        print("remedy parity \(name): final latent max |diff| \(err) (max |ref| \(ref.maxAbs))")
        #expect(err <= 1e-4, "\(name): final latent off by \(err)")
        let steps = try golden.tensor("latents")  // [E+1, 4, h, w]
        #expect(latents.all.count == steps.shape[0])
        // And not the plain run's: the remedy changed something.
        var plain = s
        plain.separation = nil
        let p = try TextToImagePipeline(model: model).generate(plain)
        #expect(worstElement(p.latent, ref).error > 1e-2, "\(name): the remedy did nothing")
    }

    @Test("without --separate the run is bit-identical; a separation leaves the model as it was")
    func plainUnchanged() throws {
        let model = try #require(Self.model)
        var s = GenerationSettings(prompt: "photo of a witch and a robot dancing")
        s.seed = 5
        s.steps = 3
        s.sampler = .euler
        s.width = 64
        s.height = 64
        let before = try TextToImagePipeline(model: model).generate(s)
        var remedied = s
        remedied.separation = Separation(subjects: ["witch", "robot"])
        _ = try TextToImagePipeline(model: model).generate(remedied)
        #expect(model.unet.probes.regional == nil)
        let after = try TextToImagePipeline(model: model).generate(s)
        #expect(worstElement(before.latent, after.latent).error == 0)
    }

    @Test("with an A1111 sampler too: the remedy changes the run, and a remedy of until 0.01 bounds only the first call")
    func a1111() throws {
        let model = try #require(Self.model)
        var s = GenerationSettings(prompt: "photo of a witch and a robot dancing")
        (s.seed, s.steps, s.width, s.height) = (4, 4, 64, 64)
        s.a1111 = A1111Sampling(sampler: .dpmpp2m)
        let plain = try TextToImagePipeline(model: model).generate(s).latent
        var remedied = s
        remedied.separation = Separation(subjects: ["witch", "robot"])
        let full = try TextToImagePipeline(model: model).generate(remedied).latent
        #expect(relativeError(full, plain) > 1e-3)
        remedied.separation?.until = 0.01
        let brief = try TextToImagePipeline(model: model).generate(remedied).latent
        #expect(relativeError(brief, plain) > 0 && relativeError(brief, full) > 0)
        #expect(model.unet.probes.regional == nil)
    }

    @Test("region labels at every resolution, square and not")
    func labels() {
        // Halves at 8×8, 4×4 and a 3-wide map (odd: the middle column's centre is at 0.5 → right).
        #expect(RegionalAttention.labels(boxes: Separation.columns(2), height: 1, width: 4) == [1, 1, 2, 2])
        #expect(RegionalAttention.labels(boxes: Separation.columns(2), height: 2, width: 3) == [1, 2, 2, 1, 2, 2])
        #expect(RegionalAttention.labels(boxes: Separation.columns(3), height: 1, width: 6) == [1, 1, 2, 2, 3, 3])
        // A box with a margin: only pixels whose centres are inside.
        let boxed = RegionalAttention.labels(boxes: [[0.25, 0.25, 0.75, 0.75]], height: 4, width: 4)
        #expect(boxed == [0, 0, 0, 0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 0, 0, 0])
        // Overlapping boxes: the first wins; a 12×20 map keeps its aspect.
        let wide = RegionalAttention.labels(boxes: [[0, 0, 0.6, 1], [0.4, 0, 1, 1]], height: 12, width: 20)
        #expect(wide.count == 240 && wide[11] == 1 && wide[12] == 2 && wide[19] == 2)
    }

    @Test("masked attention: blocked pairs get no weight; unmasked probe; refusals")
    func masked() throws {
        let q = try Tensor(shape: [1, 3, 4], scalars: (0..<12).map { Float($0 % 5) * 0.3 })  // [B, Nq, H·D]
        let k = try Tensor(shape: [1, 3, 4], scalars: (0..<12).map { Float($0 % 7) * 0.2 })
        let v = try Tensor(shape: [1, 3, 4], scalars: (0..<12).map { Float($0) })
        let mask = AttentionLabelMask(queryLabels: [1, 2, 0], keyLabels: [1, 2, 0], rule: .regionsApart)
        var seen: [[Float]] = []
        let y = try maskedAttention(q: q, k: k, v: v, heads: 1, mask: mask) { _, _, r0, rows, p in
            for r in 0..<rows { seen.append(Array(UnsafeBufferPointer(start: p + r * 3, count: 3))); _ = r0 }
        }
        #expect(seen.count == 3 && seen[0][1] == 0 && seen[1][0] == 0 && seen[2].allSatisfy { $0 > 0 })
        // Row 0 sees keys 0 and 2 only: its output is their blend.
        let w0 = seen[0][0], w2 = seen[0][2]
        #expect(abs(y.pointer[0] - (w0 * v.pointer[0] + w2 * v.pointer[8])) < 1e-5)
        // With no mask the same numbers as attention().
        let free = AttentionLabelMask(queryLabels: [0, 0, 0], keyLabels: [0, 0, 0], rule: .regionsApart)
        #expect(worstElement(try maskedAttention(q: q, k: k, v: v, heads: 2, mask: free), try attention(q: q, k: k, v: v, heads: 2)).error < 1e-6)
        // The probe sees the unmasked softmax.
        var probe: [Float] = []
        _ = try maskedAttention(q: q, k: k, v: v, heads: 1, mask: mask, probabilities: { _, _, _, rows, p in
            probe += Array(UnsafeBufferPointer(start: p, count: rows * 3))
        }, probeUnmasked: true)
        #expect(probe[1] > 0)
        // A region whose queries would see no key is refused, not NaN.
        let starved = AttentionLabelMask(queryLabels: [0, 0, 0], keyLabels: [1, 1, 1], rule: .keysInOwnRegion)
        #expect(throws: TensorError.self) { try maskedAttention(q: q, k: k, v: v, heads: 1, mask: starved) }
    }

    @Test("bad separations fail in one line naming the flag")
    func refusals() throws {
        let model = try #require(Self.model)
        func message(_ edit: (inout GenerationSettings) -> Void) -> String {
            var s = GenerationSettings(prompt: "a witch and a robot")
            s.steps = 1
            s.width = 64
            s.height = 64
            edit(&s)
            do { _ = try TextToImagePipeline(model: model).generate(s); return "" } catch { return "\(error)" }
        }
        #expect(message { $0.separation = Separation(subjects: ["witch"]) }.hasPrefix("--separate"))
        #expect(message { $0.separation = Separation(subjects: ["witch", "dragon"]) }.contains("--separate dragon: not a word"))
        #expect(message { $0.separation = Separation(subjects: ["witch", "robot"], boxes: [[0, 0, 1, 1], [0.5, 0.5, 0.2, 1]]) }.hasPrefix("--regions"))
        #expect(message { var p = Separation(subjects: ["witch", "robot"]); p.until = 0; $0.separation = p }.hasPrefix("--separate-until"))
        #expect(throws: PipelineError.self) { try Separation.parseBoxes("witch=0,0,1", subjects: ["witch", "robot"]) }
        #expect(throws: PipelineError.self) { try Separation.parseBoxes("witch=0,0,.5,1", subjects: ["witch", "robot"]) }
        #expect(try Separation.parseBoxes("Robot=.5,0,1,1; witch=0,0,.5,1", subjects: ["witch", "robot"]) == [[0, 0, 0.5, 1], [0.5, 0, 1, 1]])
        #expect(Separation(subjects: ["alex", "cora"]).ownPrompt("alex and cora, alexcora side by side", subject: 0) == "alex and , alexcora side by side")
    }
}
