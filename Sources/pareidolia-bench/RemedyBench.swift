import ArgumentParser
import Diffusion
import Foundation
import Models
import Tensors

/// What the merge remedy costs a UNet evaluation (guidance batch of 2): plain, and with bounded
/// regional attention (two half-picture regions, both channels, a regional context each). Rounds
/// alternate so that drift on a shared machine falls on both alike.
struct RemedyBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "remedy",
        abstract: "UNet evaluation plain vs with bounded regional attention (--separate).")

    @Option(help: "An SD 1.x model (diffusers folder or single file).")
    var model: String

    @Option(help: "Latent side (64 for 512×512).")
    var latent = 64

    @Option(help: "Rounds; each times both variants once (the best per variant is reported).")
    var rounds = 3

    func run() throws {
        try BLAS.load()
        let sd = try StableDiffusionModel.load(model, vaeEncoder: false)
        let prompt = "alex and cora side by side on grass"
        let ids = [sd.tokenizer.encode(""), sd.tokenizer.encode(prompt)]
        let context = try sd.textEncoder.encode(ids)  // [2, 77, D]: unconditional, conditional
        let own = try ["alex side by side on grass", "cora side by side on grass"].map {
            try sd.textEncoder.encode([sd.tokenizer.encode($0)])  // [1, 77, D]
        }
        let regional = RegionalAttention(
            regions: zip(Separation.columns(2), own).enumerated().map { i, r in .init(box: r.0, context: r.1, tokens: [1 + i * 2]) },
            conditionalBatch: 1)
        let sample = Tensor.random([2, 4, latent, latent], seed: 11)
        let variants: [(String, RegionalAttention?)] = [("plain", nil), ("bounded regional attention (full)", regional)]
        var best = [Double](repeating: .infinity, count: variants.count)
        _ = try sd.unet(sample, timesteps: [981], context: context)  // warm-up
        for _ in 0..<max(1, rounds) {
            for (i, v) in variants.enumerated() {
                sd.unet.probes.regional = v.1
                let t0 = DispatchTime.now().uptimeNanoseconds
                _ = try sd.unet(sample, timesteps: [981], context: context)  // [2, 4, h, w]
                best[i] = min(best[i], Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9)
            }
        }
        sd.unet.probes.regional = nil
        var table = Table(columns: ["UNet evaluation (batch 2, \(latent)×\(latent))", "s", "vs plain"])
        for (i, v) in variants.enumerated() { table.add([v.0, fmt(best[i], 3), fmt(best[i] / best[0], 3)]) }
        print(table.render())
        print("best of \(rounds) alternating rounds; target: at most 1.10× a plain evaluation")
    }
}
