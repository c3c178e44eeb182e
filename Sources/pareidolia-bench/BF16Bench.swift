import ArgumentParser
import Foundation
import Tensors

/// The bf16 GEMM of the fast mode beside its fp32 peers (OpenBLAS sgemm, conv2d, linear) on the
/// same shapes, in the same run.
struct BF16Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bf16",
        abstract: "bf16 GEMM (AVX512-BF16) vs sgemm, conv2d and linear at SD 1.5's shapes.")

    @Option(help: "Timed repetitions per kernel (the best is reported).")
    var repeats = 5

    @Flag(help: "Small shapes, for a quick check that the benchmark runs.")
    var quick = false

    @Option(help: "Only the rows whose kernel name contains this (gemm, linear, conv2d).")
    var only: String?

    func run() throws {
        try BLAS.load()
        guard PackedBF16Matrix.isSupported else {
            print("this CPU lacks AVX512-BF16: nothing to measure")
            return
        }
        print("OpenBLAS core: \(BLAS.coreName), \(BLAS.threads) threads; \(Parallel.workers) workers for the bf16 kernels")
        var table = Table(columns: ["kernel", "shape", "bf16 ms", "GFLOP/s", "fp32 ms", "GFLOP/s", "ratio", "max rel err"])
        func add(_ name: String, _ shape: String, flops: Double, bf16: () throws -> Tensor, fp32: () throws -> Tensor) throws {
            if let only, !name.contains(only) { return }
            var y16 = Tensor(zeros: [1]), y32 = Tensor(zeros: [1])
            let s16 = try bestSeconds(repeats: repeats) { y16 = try bf16() }
            let s32 = try bestSeconds(repeats: repeats) { y32 = try fp32() }
            let (r16, r32) = (flops / s16 / 1e9, flops / s32 / 1e9)
            table.add([name, shape, fmt(s16 * 1e3, 2), fmt(r16), fmt(s32 * 1e3, 2), fmt(r32), fmt(r16 / r32, 2),
                       String(format: "%.1e", relativeError(y16, y32))])
        }

        // Plain GEMMs, C [M, N] = W [M, K] · B [K, N] (the conv layout): against sgemm.
        let gemms = quick ? [(64, 576, 1024), (128, 128, 256)]
                          : [(320, 2880, 4096), (640, 5760, 1024), (1280, 11520, 256), (1280, 1280, 256)]
        for (m, k, n) in gemms {
            let w = Tensor.random([m, k], seed: 1, scale: 0.02), b = Tensor.random([k, n], seed: 2)
            let packed = try PackedBF16Matrix(w)
            let c16 = Tensor(uninitializedShape: [m, n]), c32 = Tensor(uninitializedShape: [m, n])  // [M, N]
            try add("gemm", "\(m)×\(k)×\(n)", flops: 2.0 * Double(m * k * n), bf16: {
                gemmBF16(packed, b: b.pointer, rsb: n, csb: 1, n: n, c: c16.pointer, rsc: n, csc: 1, accumulate: false)
                return c16
            }, fp32: {
                BLAS.sgemm(m: m, n: n, k: k, a: w.pointer, lda: k, b: b.pointer, ldb: n, c: c32.pointer, ldc: n)
                return c32
            })
        }
        // The linear layout, y [rows, out] = x [rows, in] · Wᵀ: B and C transposed.
        let linears = quick ? [(1024, 64, 64)] : [(8192, 320, 320), (8192, 320, 2560), (8192, 1280, 320)]
        for (rows, inF, outF) in linears {
            let x = Tensor.random([rows, inF], seed: 3), w = Tensor.random([outF, inF], seed: 4, scale: 0.05)
            let packed = try PackedBF16Matrix(w)
            let c16 = Tensor(uninitializedShape: [rows, outF]), c32 = Tensor(uninitializedShape: [rows, outF])  // [rows, out]
            try add("gemm (linear)", "\(rows)×\(inF)→\(outF)", flops: 2.0 * Double(rows * inF * outF), bf16: {
                gemmBF16(packed, b: x.pointer, rsb: 1, csb: inF, n: rows, c: c16.pointer, rsc: 1, csc: outF, accumulate: false)
                return c16
            }, fp32: {
                BLAS.sgemm(transB: true, m: rows, n: outF, k: inF, a: x.pointer, lda: inF, b: w.pointer, ldb: inF,
                           c: c32.pointer, ldc: outF)
                return c32
            })
            let bias = Tensor.random([outF], seed: 5)
            try add("linear", "\(rows)×\(inF)→\(outF)", flops: 2.0 * Double(rows * inF * outF),
                    bf16: { try linearBF16(x, weight: packed, bias: bias) },
                    fp32: { try linear(x, weight: w, bias: bias) })
        }
        // Whole convolutions, batch 2 (im2col included), against conv2d.
        let convs = quick ? [(16, 64, 3, 1), (8, 128, 1, 1)]
                          : [(64, 320, 3, 1), (32, 640, 3, 1), (16, 1280, 3, 1), (16, 1280, 1, 1), (64, 320, 3, 2)]
        for (side, ch, k, stride) in convs {
            let x = Tensor.random([2, ch, side, side], seed: 6)
            let w = Tensor.random([ch, ch, k, k], seed: 7, scale: 0.02), bias = Tensor.random([ch], seed: 8)
            let packed = try PackedBF16Matrix(w)
            let pad = k / 2, out = (side + 2 * pad - k) / stride + 1
            try add("conv2d \(k)×\(k)\(stride > 1 ? " s\(stride)" : "")", "2×\(ch)×\(side)²",
                    flops: 2.0 * 2 * Double(ch * ch * k * k * out * out),
                    bf16: { try conv2dBF16(x, weight: packed, kernel: k, bias: bias, stride: stride, padding: pad) },
                    fp32: { try conv2d(x, weight: w, bias: bias, stride: stride, padding: pad) })
        }
        print(table.render())
        print("FLOPs: 2·M·N·K. ratio = bf16 rate / fp32 rate (sgemm, linear or conv2d). max rel err: max |bf16 − fp32| / max |fp32|,")
        print("mostly the rounding of the inputs to bf16 (8-bit mantissa), not the fp32 sums.")
    }

    func relativeError(_ a: Tensor, _ b: Tensor) -> Double {
        var err: Float = 0, ref: Float = 0
        for i in 0..<min(a.count, b.count) { err = max(err, abs(a.pointer[i] - b.pointer[i])); ref = max(ref, abs(b.pointer[i])) }
        return Double(err / max(ref, .leastNormalMagnitude))
    }
}
