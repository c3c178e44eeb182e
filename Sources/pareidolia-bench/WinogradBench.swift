import ArgumentParser
import Foundation
import Tensors

/// conv2d (im2col + sgemm) against conv2dWinograd at the 3×3, stride-1 shapes of SD 1.5's UNet
/// (batch 2, 512×512 images) and VAE decoder (batch 1).
struct WinogradBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "winograd",
        abstract: "3×3 convolution: im2col conv2d vs Winograd F(2×2,3×3) and F(4×4,3×3), time and error.")

    @Option(help: "Timed rounds (each times every kernel once after a warm-up; the best is reported).")
    var repeats = 3

    @Option(help: "Winograd variants to time: f2, f4 or both.")
    var variant = "both"

    @Option(help: "How U is had: call (transformed per call, the default), once (held), or both.")
    var form = "call"

    @Flag(help: "Inputs N(0, 1) instead of SiLU(N(0, 1)) (what follows GroupNorm + SiLU).")
    var normalInputs = false

    @Option(help: "Shapes of one network only: unet or vae.")
    var net: String?

    @Flag(help: "Small shapes, for a quick check that the benchmark runs.")
    var quick = false

    /// (where, batch, in channels, out channels, side).
    static let shapes: [(String, Int, Int, Int, Int)] = [
        ("UNet", 2, 4, 320, 64), ("UNet", 2, 320, 320, 64), ("UNet", 2, 640, 320, 64), ("UNet", 2, 960, 320, 64),
        ("UNet", 2, 640, 640, 32), ("UNet", 2, 1920, 640, 32), ("UNet", 2, 1280, 1280, 16), ("UNet", 2, 2560, 1280, 16),
        ("UNet", 2, 1280, 1280, 8), ("UNet", 2, 2560, 1280, 8), ("UNet", 2, 320, 4, 64),
        ("VAE", 1, 4, 512, 64), ("VAE", 1, 512, 512, 64), ("VAE", 1, 512, 512, 128), ("VAE", 1, 512, 256, 256),
        ("VAE", 1, 256, 256, 256), ("VAE", 1, 256, 128, 512), ("VAE", 1, 128, 128, 512), ("VAE", 1, 128, 3, 512),
    ]
    static let quickShapes: [(String, Int, Int, Int, Int)] = [("UNet", 2, 64, 64, 16), ("VAE", 1, 32, 16, 33)]

    func run() throws {
        try BLAS.load()
        guard let variants = ["f2": [WinogradVariant.f2x2], "f4": [.f4x4], "both": [.f2x2, .f4x4]][variant] else {
            throw ValidationError("--variant must be f2, f4 or both")
        }
        guard let forms = ["call": [false], "once": [true], "both": [false, true]][form] else {
            throw ValidationError("--form must be call, once or both")
        }
        let kinds = variants.flatMap { v in forms.map { (v, $0) } }
        print("OpenBLAS core: \(BLAS.coreName); \(Parallel.workers) workers; kernels at \(KernelISA.current)")
        print("Data: weights N(0, 0.03²), inputs \(normalInputs ? "N(0, 1)" : "SiLU(N(0, 1))"), bias N(0, 0.03²).")
        var table = Table(columns: ["net", "shape B×C→O×H×W", "variant", "conv2d ms", "wino ms", "speed-up", "eff GFLOP/s", "max rel err"])
        var totals: [String: (Double, Double)] = [:]  // "net variant": (conv2d s, winograd s)
        for (net, b, c, o, side) in quick ? Self.quickShapes : Self.shapes where self.net.map({ $0.lowercased() == net.lowercased() }) ?? true {
            var x = Tensor.gaussian([b, c, side, side], seed: 1, std: 1)
            if !normalInputs { x = silu(x) }
            let w = Tensor.gaussian([o, c, 3, 3], seed: 2, std: 0.03)
            let bias = Tensor.gaussian([o], seed: 3, std: 0.03)
            let weights = try kinds.map { try WinogradWeight(weight: w, variant: $0.0, transformOnce: $0.1) }
            // conv2d and each variant in turn, every round: on a shared machine, other work then
            // slows all of them alike, and the best of the rounds is compared.
            var reference = x, outputs = weights.map { _ in x }
            var best = [Double](repeating: .infinity, count: 1 + weights.count)
            for round in 0...max(1, repeats) {  // round 0 warms up
                let t = try bestSeconds(repeats: 1, warmup: false) { reference = try conv2d(x, weight: w, bias: bias, stride: 1, padding: 1) }
                if round > 0 { best[0] = min(best[0], t) }
                for (i, ww) in weights.enumerated() {
                    let t = try bestSeconds(repeats: 1, warmup: false) { outputs[i] = try conv2dWinograd(x, weight: ww, bias: bias) }
                    if round > 0 { best[i + 1] = min(best[i + 1], t) }
                }
            }
            let direct = best[0]
            let flops = 2.0 * Double(b * o * c * 9 * side * side)
            for (i, (v, once)) in kinds.enumerated() {
                let (y, s) = (outputs[i], best[i + 1])
                let error = maxDifference(y, reference) / max(reference.maxAbs, .leastNormalMagnitude)
                let label = "\(v)\(forms.count > 1 ? (once ? " held" : " per call") : "")\(weights[i].usesConv2d ? "*" : "")"
                table.add([net, "\(b)×\(c)→\(o)×\(side)×\(side)", label, fmt(direct * 1e3), fmt(s * 1e3),
                           fmt(direct / s, 2), fmt(flops / s / 1e9), String(format: "%.1e", error)])
                let key = "\(net) \(label)"
                totals[key] = ((totals[key]?.0 ?? 0) + direct, (totals[key]?.1 ?? 0) + s)
            }
        }
        print(table.render())
        for key in totals.keys.sorted() {
            let (d, s) = totals[key]!
            print("\(key): all shapes once, conv2d \(fmt(d * 1e3)) ms, Winograd \(fmt(s * 1e3)) ms, \(fmt(d / s, 2))×")
        }
        print("eff GFLOP/s: direct-convolution FLOPs (2·B·O·C·9·H·W) / Winograd time. Error: max |wino − conv2d| / max |conv2d|.")
        print("*: fewer than 16 input channels, where conv2dWinograd runs conv2d.")
    }

    private func maxDifference(_ a: Tensor, _ b: Tensor) -> Float {
        var worst: Float = 0
        for i in 0..<a.count { worst = max(worst, abs(a.pointer[i] - b.pointer[i])) }
        return worst
    }
}

extension Tensor {
    /// Deterministic N(0, std²) values (xorshift + Box–Muller; benchmarks only).
    static func gaussian(_ shape: [Int], seed: UInt64, std: Float) -> Tensor {
        let t = Tensor(uninitializedShape: shape)
        var s = seed &* 0x9E3779B97F4A7C15 | 1
        func uniform() -> Double {  // in (0, 1]
            s ^= s << 13; s ^= s >> 7; s ^= s << 17
            return Double((s >> 11) + 1) * 0x1p-53
        }
        var i = 0
        while i < t.count {
            let r = (-2 * log(uniform())).squareRoot(), phi = 2 * Double.pi * uniform()
            t.pointer[i] = Float(r * cos(phi)) * std
            if i + 1 < t.count { t.pointer[i + 1] = Float(r * sin(phi)) * std }
            i += 2
        }
        return t
    }
}
