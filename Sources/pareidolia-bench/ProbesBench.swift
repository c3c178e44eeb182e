import ArgumentParser
import Foundation
import Models
import Tensors

/// What instrumentation costs a UNet evaluation: no observer (the default), an observer that
/// declines every site (asked once per layer call, nothing copied), and one that takes every
/// cross-attention probability (what the trace's DAAM aggregate needs). Runs alternate so that
/// drift on a shared machine falls on all three alike.
struct ProbesBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "probes",
        abstract: "UNet evaluation with probes off, asked-but-declined, and taking cross-attention.")

    @Option(help: "An SD 1.x model (diffusers folder or single file).")
    var model: String

    @Option(help: "Latent side (64 for 512×512).")
    var latent = 64

    @Option(help: "Rounds; each times the three variants once (the best per variant is reported).")
    var rounds = 3

    final class Declining: AttentionObserver {
        var asked = 0
        func wantsAttention(site: String, crossAttention: Bool) -> Bool { asked += 1; return false }
        func attention(site: String, batch: Int, head: Int, heads: Int, rowStart: Int, rows: Int, keys: Int,
                       probabilities: UnsafePointer<Float>, height: Int, width: Int) {}
        func attentionDone(site: String) {}
    }

    /// Takes every cross-attention row and sums it (so the copy cannot be optimised away).
    final class Taking: AttentionObserver {
        var total: Double = 0
        let lock = NSLock()
        func wantsAttention(site: String, crossAttention: Bool) -> Bool { crossAttention }
        func attention(site: String, batch: Int, head: Int, heads: Int, rowStart: Int, rows: Int, keys: Int,
                       probabilities: UnsafePointer<Float>, height: Int, width: Int) {
            var s: Float = 0
            for i in 0..<(rows * keys) { s += probabilities[i] }
            lock.lock(); total += Double(s); lock.unlock()
        }
        func attentionDone(site: String) {}
    }

    func run() throws {
        try BLAS.load()
        let sd = try StableDiffusionModel.load(model, vaeEncoder: false)
        let ids = [sd.tokenizer.encode("a witch and her black cat in a moonlit forest"), sd.tokenizer.encode("")]
        let context = try sd.textEncoder.encode(ids)  // [2, 77, 768]
        let sample = Tensor.random([2, 4, latent, latent], seed: 11)
        let declining = Declining(), taking = Taking()
        let variants: [(String, AttentionObserver?)] = [("probes off (no observer)", nil),
                                                        ("observer declining every site", declining),
                                                        ("observer taking cross-attention", taking)]
        var best = [Double](repeating: .infinity, count: variants.count)
        var reference: Tensor?
        var identical = true
        _ = try sd.unet(sample, timesteps: [981], context: context)  // warm-up
        for _ in 0..<max(1, rounds) {
            for (i, v) in variants.enumerated() {
                sd.unet.probes.attention = v.1
                let t0 = DispatchTime.now().uptimeNanoseconds
                let eps = try sd.unet(sample, timesteps: [981], context: context)  // [2, 4, h, w]
                best[i] = min(best[i], Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9)
                if let r = reference {
                    identical = identical && memcmp(r.pointer, eps.pointer, r.count * 4) == 0
                } else {
                    reference = eps
                }
            }
        }
        sd.unet.probes.attention = nil
        var table = Table(columns: ["UNet evaluation (batch 2, \(latent)×\(latent))", "s", "vs probes off"])
        for (i, v) in variants.enumerated() { table.add([v.0, fmt(best[i], 3), fmt(best[i] / best[0], 3)]) }
        print(table.render())
        print("best of \(rounds) alternating rounds; outputs bit-identical across variants: \(identical); "
              + "sites asked per evaluation: \(declining.asked / (max(1, rounds)))")
    }
}
