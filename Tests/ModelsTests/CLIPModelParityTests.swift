import Checkpoints
import Foundation
import Tensors
import TestSupport
import Testing
@testable import Models

/// The Swift CLIPModel against transformers' on a tiny random one (Tools/reference/make_clip_fixtures.py).
@Suite("CLIP model parity")
struct CLIPModelParityTests {
    static let ids: [[Int32]] = [
        [998, 5, 17, 230] + [Int32](repeating: 999, count: 73),
        [998, 640] + [Int32](repeating: 999, count: 75),
    ]

    @Test func imageAndTextEmbeddingsMatchTransformers() throws {
        try BLAS.load()
        let model = try CLIPModel.load(Fixtures.path("tiny-clip"))
        let expected = try SafeTensorsFile(path: Fixtures.path("tiny-clip/expected.safetensors"))
        let pixels = try expected.tensor("pixel_values")  // [2, 3, 32, 32]
        expectClose(try model.vision.lastHiddenState(pixels), try expected.tensor("vision_last_hidden_state"), relTol: 1e-4, "vision states")
        expectClose(try model.imageEmbeddings(pixels), try expected.tensor("image_embeds"), relTol: 1e-4, "image embeddings")
        expectClose(try model.textEmbeddings(Self.ids), try expected.tensor("text_embeds"), relTol: 1e-4, "text embeddings")
    }

    @Test func fp16WeightsStayClose() throws {
        try BLAS.load()
        let model = try CLIPModel.load(Fixtures.path("tiny-clip"), precision: .fp16)
        let expected = try SafeTensorsFile(path: Fixtures.path("tiny-clip/expected.safetensors"))
        expectClose(try model.imageEmbeddings(try expected.tensor("pixel_values")), try expected.tensor("image_embeds"), relTol: 1e-2, "fp16 image embeddings")
    }

    /// The same weights as a float16 pytorch_model.bin (read by the safe unpickler) against
    /// transformers on that file (tiny-clip-bin/expected.safetensors).
    @Test func fp16PickleFolderMatchesTransformers() throws {
        try BLAS.load()
        let model = try CLIPModel.load(Fixtures.path("tiny-clip-bin"))
        let inputs = try SafeTensorsFile(path: Fixtures.path("tiny-clip/expected.safetensors"))
        let expected = try SafeTensorsFile(path: Fixtures.path("tiny-clip-bin/expected.safetensors"))
        expectClose(try model.imageEmbeddings(try inputs.tensor("pixel_values")), try expected.tensor("image_embeds"), relTol: 1e-4, ".bin image embeddings")
        expectClose(try model.textEmbeddings(Self.ids), try expected.tensor("text_embeds"), relTol: 1e-4, ".bin text embeddings")
    }

    /// The check `generate --clip-model` makes before a run: what loading would refuse, without the weights.
    @Test func folderCheckFindsWhatLoadingWouldRefuse() throws {
        try CLIPScorer.check(folder: DefaultModel.clipPath())
        #expect(throws: (any Error).self) { try CLIPScorer.check(folder: Fixtures.path("tiny-clip")) }  // no tokenizer files
        #expect(throws: WeightLoadError.self) { try CLIPScorer.check(folder: Fixtures.path("tiny-sd")) }  // not a CLIPModel
        #expect(throws: WeightLoadError.self) { try CLIPScorer.check(folder: "/nonexistent") }
    }

    /// A config from before transformers#24773 says eos_token_id 2 (OpenAI's clip-vit-large-patch14
    /// does); transformers then pools at the highest id, which is the end token here as there.
    @Test func legacyEndTokenIdPoolsAtTheHighestId() throws {
        try BLAS.load()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("pd-legacy-clip-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let source = URL(fileURLWithPath: Fixtures.path("tiny-clip"))
        try FileManager.default.copyItem(at: source.appendingPathComponent("model.safetensors"), to: dir.appendingPathComponent("model.safetensors"))
        var config = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: source.appendingPathComponent("config.json"))) as? [String: Any])
        var text = try #require(config["text_config"] as? [String: Any])
        text["eos_token_id"] = 2
        config["text_config"] = text
        try JSONSerialization.data(withJSONObject: config).write(to: dir.appendingPathComponent("config.json"))
        let model = try CLIPModel.load(dir.path)
        #expect(model.eosTokenID == 2)
        let expected = try SafeTensorsFile(path: Fixtures.path("tiny-clip/expected.safetensors"))
        expectClose(try model.textEmbeddings(Self.ids), try expected.tensor("text_embeds"), relTol: 1e-4, "legacy eos_token_id 2")
    }

    /// preprocessor_config.json in both forms: transformers' dicts and OpenAI's plain numbers.
    @Test func preprocessorConfigInBothForms() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("pd-preproc-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let url = dir.appendingPathComponent("preprocessor_config.json")
        try Data(#"{"size": 96, "crop_size": 64, "image_mean": [0.5, 0.5, 0.5], "image_std": [0.25, 0.25, 0.25], "resample": 3}"#.utf8).write(to: url)
        let old = try CLIPScorer.processor(url, imageSize: 64)
        #expect(old.size == 96 && old.crop == 64 && old.mean == [0.5, 0.5, 0.5] && old.std == [0.25, 0.25, 0.25])
        try Data(#"{"size": {"shortest_edge": 80}, "crop_size": {"height": 64, "width": 64}}"#.utf8).write(to: url)
        let new = try CLIPScorer.processor(url, imageSize: 64)
        #expect(new.size == 80 && new.crop == 64 && new.mean == CLIPImageProcessor().mean)
        #expect(throws: WeightLoadError.self) { try CLIPScorer.processor(url, imageSize: 224) }  // crop 64, tower 224
    }

    @Test func wrongImageSizeAndMissingEndTokenAreErrors() throws {
        try BLAS.load()
        let model = try CLIPModel.load(Fixtures.path("tiny-clip"))
        #expect(throws: TensorError.self) { try model.imageEmbeddings(Tensor(zeros: [1, 3, 16, 16])) }
        #expect(throws: TensorError.self) { try model.textEmbeddings([[998, 5, 6]]) }
        #expect(throws: WeightLoadError.self) { try CLIPModel.load(Fixtures.path("tiny-sd")) }
    }
}
