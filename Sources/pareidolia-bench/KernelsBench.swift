import ArgumentParser
import Foundation
import Tensors

/// GFLOP/s of the kernels that dominate SD 1.5, each beside the sgemm rate of the same run.
struct KernelsBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kernels",
        abstract: "sgemm 2048³, conv2d 3×3 at SD 1.5's shapes, attention 4096×4096×40 ×8 heads.")

    @Option(help: "Timed repetitions per kernel (the best is reported).")
    var repeats = 3

    @Flag(help: "Small shapes, for a quick check that the benchmark runs.")
    var quick = false

    func run() throws {
        try BLAS.load()
        print("OpenBLAS core: \(BLAS.coreName)\(BLAS.coreTypeChosenByLoader ? " (chosen by Pareidolia)" : ""), \(BLAS.threads) threads; \(Parallel.workers) workers for other kernels")
        var table = Table(columns: ["kernel", "shape", "ms", "GFLOP/s", "vs sgemm"])

        // sgemm 2048³ (or 512³ with --quick) over the cores: the reference rate (OpenBLAS itself
        // runs on one thread; sgemmAcrossCores is how the engine multiplies).
        let n = quick ? 512 : 2048
        let a = Tensor.random([n, n], seed: 1), b = Tensor.random([n, n], seed: 2)
        let c = Tensor(zeros: [n, n])
        let gemmSeconds = bestSeconds(repeats: repeats) {
            BLAS.sgemmAcrossCores(m: n, n: n, k: n, a: a.pointer, lda: n, b: b.pointer, ldb: n, c: c.pointer, ldc: n)
        }
        let gemmRate = 2 * pow(Double(n), 3) / gemmSeconds / 1e9
        table.add(["sgemm", "\(n)³", fmt(gemmSeconds * 1e3), fmt(gemmRate), "1.00"])

        // conv2d 3×3, stride 1, padding 1, batch 2, at the UNet's three widths.
        let convShapes = quick ? [(16, 64), (8, 128)] : [(64, 320), (32, 640), (16, 1280)]
        for (side, ch) in convShapes {
            let x = Tensor.random([2, ch, side, side], seed: 3)
            let w = Tensor.random([ch, ch, 3, 3], seed: 4, scale: 0.02)
            let bias = Tensor.random([ch], seed: 5)
            let s = try bestSeconds(repeats: repeats) { _ = try conv2d(x, weight: w, bias: bias, stride: 1, padding: 1) }
            let flops = 2.0 * 2 * Double(ch * ch * 9 * side * side)
            let rate = flops / s / 1e9
            table.add(["conv2d 3×3", "2×\(ch)×\(side)×\(side)", fmt(s * 1e3), fmt(rate), fmt(rate / gemmRate, 2)])
        }

        // Self-attention at 64×64 latents: 4096 queries and keys, 8 heads of 40 (batch 1).
        let tokens = quick ? 1024 : 4096, heads = 8, dim = 40
        let q = Tensor.random([1, tokens, heads * dim], seed: 6)
        let k = Tensor.random([1, tokens, heads * dim], seed: 7)
        let v = Tensor.random([1, tokens, heads * dim], seed: 8)
        let s = try bestSeconds(repeats: repeats) { _ = try attention(q: q, k: k, v: v, heads: heads) }
        let flops = 4.0 * Double(tokens * tokens * dim * heads)
        let rate = flops / s / 1e9
        table.add(["attention", "\(tokens)²×\(dim)×\(heads)h", fmt(s * 1e3), fmt(rate), fmt(rate / gemmRate, 2)])

        print(table.render())
        print("FLOPs: 2·M·N·K for sgemm and conv (batch 2), 4·N²·d per head for attention (QKᵀ and PV).")
    }
}

extension Tensor {
    /// Deterministic pseudo-random values in [-scale, scale) (xorshift; benchmarks only).
    static func random(_ shape: [Int], seed: UInt64, scale: Float = 1) -> Tensor {
        let t = Tensor(uninitializedShape: shape)
        var s = seed &* 0x9E3779B97F4A7C15 | 1
        for i in 0..<t.count {
            s ^= s << 13; s ^= s >> 7; s ^= s << 17
            t.pointer[i] = (Float(s >> 40) / Float(1 << 24) * 2 - 1) * scale
        }
        return t
    }
}
