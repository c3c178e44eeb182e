import Checkpoints
import Foundation
@testable import Models
import Testing

/// Checkpoints and configs the bind and json fuzz targets found crashing the loader or asking
/// for gigabytes, kept so the checks stay.
@Suite("Fuzz regressions: model loading")
struct ModelFuzzRegressionTests {
    /// A single-file checkpoint holding `tensors` (name, shape) as F32 with zero bytes of data
    /// each way the shapes allow, written to a temporary file.
    func checkpoint(_ tensors: [(String, [Int])]) throws -> String {
        var header = "{", offset = 0
        for (name, shape) in tensors {
            let bytes = shape.contains(0) ? 0 : shape.reduce(4, *)
            header += "\(header.count > 1 ? "," : "")\"\(name)\":{\"dtype\":\"F32\",\"shape\":\(shape),\"data_offsets\":[\(offset),\(offset + bytes)]}"
            offset += bytes
        }
        header += "}"
        var data = withUnsafeBytes(of: UInt64(header.utf8.count).littleEndian) { Data($0) }
        data.append(Data(header.utf8))
        data.append(Data(count: offset))
        let path = NSTemporaryDirectory() + "fuzz-regression-\(UUID().uuidString).safetensors"
        try data.write(to: URL(fileURLWithPath: path))
        return path
    }

    func loadError(_ path: String) -> String? {
        defer { try? FileManager.default.removeItem(atPath: path) }
        do { _ = try StableDiffusionModel.load(path, vaeEncoder: false, fast: []); return nil } catch { return "\(error)" }
    }

    @Test("a first convolution of Int.max channels in zero bytes is refused, not multiplied (overflow)")
    func lyingConvolution() throws {
        let e = loadError(try checkpoint([("model.diffusion_model.input_blocks.0.0.weight", [Int.max, 0, 3, 3])]))
        #expect(e?.contains("implausible") == true, "\(e ?? "loaded")")
    }

    @Test("a text-encoder layer numbered 999999999999 is refused before a trillion layers are built")
    func lyingLayerCount() throws {
        let e = loadError(try checkpoint([("model.diffusion_model.input_blocks.0.0.weight", [320, 4, 3, 3]),
                                          ("cond_stage_model.transformer.text_model.encoder.layers.999999999999.x", [0])]))
        #expect(e?.contains("text encoder layer 999999999999") == true, "\(e ?? "loaded")")
    }

    @Test("a checkpoint with none of SD 1.5's weights fails without allocating them (placeholders are mapped zeros)")
    func missingEverything() throws {
        let e = loadError(try checkpoint([("model.diffusion_model.time_embed.0.weight", [1])]))
        #expect(e?.contains("missing") == true, "\(e ?? "loaded")")
        let zeros = WeightBinder.placeholder([1280, 1280, 3, 3])
        #expect(zeros.storage.owner is ZeroPages && zeros.pointer[zeros.count - 1] == 0)
    }

    @Test("configs with zero heads, zero groups or a billion layers are refused in one line")
    func implausibleConfigs() {
        func text(_ json: String) -> String? {
            do { _ = try CLIPTextConfig(json: Data(json.utf8), source: "config.json"); return nil } catch { return "\(error)" }
        }
        // json target: a CLIP config with "num_attention_heads": 0 divided by zero.
        #expect(text(#"{"text_config": {"hidden_size": 32, "num_attention_heads": 0}}"#)?.contains("num_attention_heads") == true)
        #expect(text(#"{"num_hidden_layers": 1000000000}"#)?.contains("num_hidden_layers") == true)
        #expect(throws: WeightLoadError.self) { try UNetConfig(json: Data(#"{"layers_per_block": 1000000000}"#.utf8), source: "u") }
        #expect(throws: WeightLoadError.self) { try UNetConfig(json: Data(#"{"norm_num_groups": 0}"#.utf8), source: "u") }
        #expect(throws: WeightLoadError.self) { try UNetConfig(json: Data(#"{"attention_head_dim": 7}"#.utf8), source: "u") }
        #expect(throws: WeightLoadError.self) { try VAEConfig(json: Data(#"{"block_out_channels": [128, -1]}"#.utf8), source: "v") }
        #expect(throws: Never.self) { try UNetConfig(json: Data("{}".utf8), source: "u") }
    }
}
