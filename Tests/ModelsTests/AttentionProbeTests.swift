import Checkpoints
import Testing
import TestSupport
@testable import Models
import Tensors

@Suite("Attention probes")
struct AttentionProbeTests {
    final class Recorder: AttentionObserver {
        let wanted: (String, Bool) -> Bool
        var sites: [String: (height: Int, width: Int, keys: Int, heads: Int)] = [:]
        var rowSums: [Double] = []
        var rowsSeen: [String: Int] = [:]
        var done: [String] = []
        init(_ wanted: @escaping (String, Bool) -> Bool) { self.wanted = wanted }
        func wantsAttention(site: String, crossAttention: Bool) -> Bool { wanted(site, crossAttention) }
        func attention(site: String, batch: Int, head: Int, heads: Int, rowStart: Int, rows: Int, keys: Int,
                       probabilities p: UnsafePointer<Float>, height: Int, width: Int) {
            sites[site] = (height, width, keys, heads)
            rowsSeen[site, default: 0] += rows
            for r in 0..<rows { rowSums.append((0..<keys).reduce(0.0) { $0 + Double(p[r * keys + $1]) }) }
        }
        func attentionDone(site: String) { done.append(site) }
    }

    @Test("cross-attention sites, sizes and probabilities; no effect on the output")
    func crossAttention() throws {
        let model = try StableDiffusionModel.load(Fixtures.path("tiny-sd"))
        let golden = try SafeTensorsFile(path: Fixtures.path("blocks.safetensors"))
        let sample = try golden.tensor("unet.sample"), context = try golden.tensor("unet.context")  // [2,4,16,12], [2,77,32]
        let plain = try model.unet(sample, timesteps: [981], context: context)

        let recorder = Recorder { site, cross in cross }
        model.unet.probes.attention = recorder
        defer { model.unet.probes.attention = nil }
        let observed = try model.unet(sample, timesteps: [981], context: context)
        let same = observed.scalars == plain.scalars  // observing changes nothing
        #expect(same, "observed output differs from the plain one by up to \(zip(observed.scalars, plain.scalars).map { abs($0 - $1) }.max() ?? 0)")

        // tiny-sd: cross-attention in down 0, 1 (2 each), mid (1), up 1, 2 (3 each) = 11 layers.
        #expect(recorder.sites.count == 11)
        #expect(recorder.sites.keys.allSatisfy { $0.hasSuffix(".attn2") })
        #expect(recorder.sites["down_blocks.0.attentions.0.transformer_blocks.0.attn2"].map { [$0.height, $0.width, $0.keys, $0.heads] } == [16, 12, 77, 8])
        #expect(recorder.sites["mid_block.attentions.0.transformer_blocks.0.attn2"].map { [$0.height, $0.width] } == [4, 3])
        #expect(recorder.rowsSeen["down_blocks.0.attentions.0.transformer_blocks.0.attn2"] == 2 * 8 * 16 * 12)
        #expect(recorder.rowSums.allSatisfy { abs($0 - 1) < 1e-5 })
        #expect(Set(recorder.done) == Set(recorder.sites.keys))
    }
}
