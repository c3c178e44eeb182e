import CKernels
import Foundation
import Testing
import TestSupport
@testable import Tensors

// The bf16 GEMM (fast mode). References use the same bf16-rounded inputs in double precision,
// so the only differences left are the order of the fp32 sums: 1e-5 of max |ref|.

/// x rounded to bf16, as a float.
func bf16Rounded(_ x: Float) -> Float { Float(bitPattern: UInt32(pd_bf16_round(x)) << 16) }

/// Runs the C kernel on W [M, K] and B with the given strides, columns [n0, n1), into C
/// pre-filled with `fill`; checks every C element against the double reference (and that
/// columns outside [n0, n1) are untouched).
func checkGemm(M: Int, K: Int, N: Int, n0: Int = 0, n1: Int? = nil, bLinear: Bool, cLinear: Bool,
               accumulate: Bool, pad: Int = 0, seed: UInt64 = 1) {
    let n1 = n1 ?? N
    let w = randomTensor([M, K], seed: seed)
    let bt = randomTensor([(K + pad) * (N + pad)], seed: seed + 1)
    // B [K, N] row-major (rsb = N + pad) or column-major per column (csb = K + pad).
    let (rsb, csb) = bLinear ? (1, K + pad) : (N + pad, 1)
    let (rsc, csc) = cLinear ? (1, M) : (N, 1)
    let fill = randomTensor([M * N], seed: seed + 2)
    let c = fill.copy()
    let packed = [UInt16](unsafeUninitializedCapacity: Int(pd_bf16_packed_count(Int32(M), Int32(K)))) { buf, n in
        pd_bf16_pack(w.pointer, Int32(M), Int32(K), buf.baseAddress!)
        n = buf.count
    }
    var work = [Float](repeating: .nan, count: max(1, pd_gemm_bf16_work_count(Int32(K), n0, n1)))
    pd_gemm_bf16(packed, Int32(M), Int32(K), bt.pointer, rsb, csb, n0, n1, c.pointer, rsc, csc,
                 accumulate ? 1 : 0, &work)
    let expected = fill.copy()
    for m in 0..<M { for n in n0..<n1 {
        var s: Double = 0
        for k in 0..<K { s += Double(bf16Rounded(w.pointer[m * K + k])) * Double(bf16Rounded(bt.pointer[k * rsb + n * csb])) }
        let i = m * rsc + n * csc
        expected.pointer[i] = Float(accumulate ? Double(fill.pointer[i]) + s : s)
    } }
    expectClose(c, expected, relTol: 1e-5,
                "M \(M) K \(K) N \(N) [\(n0), \(n1)) B \(bLinear ? "k-contiguous" : "n-contiguous") C \(cLinear ? "column" : "row")-major acc \(accumulate)")
}

extension KernelTests {
    /// Runs on every CPU: the rounding, and the portable (scalar) GEMM.
    @Suite struct BF16Rounding {
        func bits(_ f: Float) -> UInt16 { pd_bf16_round(f) }
        func bits(_ u: UInt32) -> UInt16 { pd_bf16_round(Float(bitPattern: u)) }

        @Test func nearestEven() {
            #expect(bits(Float(1)) == 0x3F80)
            #expect(bits(UInt32(0x3F80_8000)) == 0x3F80)  // tie, 0x3F80 is even: down
            #expect(bits(UInt32(0x3F81_8000)) == 0x3F82)  // tie, 0x3F81 is odd: up
            #expect(bits(UInt32(0x3F80_8001)) == 0x3F81)  // above the tie
            #expect(bits(UInt32(0x3F80_7FFF)) == 0x3F80)  // below the tie
            #expect(bits(UInt32(0xBF81_8000)) == 0xBF82)  // negative: same on the magnitude
            #expect(bits(UInt32(0x3FFF_FFFF)) == 0x4000)  // carry into the exponent
            #expect(bits(Float(-0.0)) == 0x8000)
        }

        @Test func infinityAndNaN() {
            #expect(bits(Float.infinity) == 0x7F80)
            #expect(bits(-Float.infinity) == 0xFF80)
            #expect(bits(Float.greatestFiniteMagnitude) == 0x7F80)  // past the largest bf16: inf
            #expect(bits(UInt32(0x7F7F_7FFF)) == 0x7F7F)  // just below that tie: stays finite
            for nan: UInt32 in [0x7FC0_0000, 0x7F80_0001, 0x7FFF_FFFF, 0xFFC0_0001, 0xFF80_0001] {
                let r = bits(nan)
                #expect(r & 0x7FFF > 0x7F80, "NaN \(String(nan, radix: 16)) → \(String(r, radix: 16))")
                #expect(r & 0x8000 == UInt16(nan >> 16) & 0x8000, "sign of NaN kept")
            }
        }

        /// The portable path (CPUs without BF16, threads below AVX-512) computes the same sums.
        @Test func scalarPath() {
            KernelISA.withLevel(.avx2) { _ in
                for (m, k, n) in [(1, 1, 1), (17, 33, 45), (20, 70, 3)] {
                    for bLinear in [false, true] { for cLinear in [false, true] {
                        checkGemm(M: m, K: k, N: n, n0: n > 5 ? 2 : 0, bLinear: bLinear, cLinear: cLinear, accumulate: cLinear, pad: 1)
                    } }
                }
            }
        }

        @Test func subnormals() {
            #expect(bits(UInt32(0x0000_0001)) == 0x0000)  // smallest float subnormal: to 0
            #expect(bits(UInt32(0x0000_8000)) == 0x0000)  // tie, even: down
            #expect(bits(UInt32(0x0001_8000)) == 0x0002)  // tie, odd: up
            #expect(bits(UInt32(0x0001_0001)) == 0x0001)
            #expect(bits(UInt32(0x007F_FFFF)) == 0x0080)  // largest subnormal: smallest normal
            #expect(bits(UInt32(0x8000_8001)) == 0x8001)
        }
    }

    @Suite(.enabled(if: PackedBF16Matrix.isSupported, Comment(rawValue: PackedBF16Matrix.unsupportedReason ?? "")))
    struct BF16Gemm {
        static func r(_ x: Float) -> Float { bf16Rounded(x) }
        static func rounded(_ t: Tensor) -> Tensor {
            let out = t.copy()
            for i in 0..<out.count { out.pointer[i] = r(out.pointer[i]) }
            return out
        }

        @Test(arguments: [(1, 1, 1), (1, 7, 1), (3, 1, 5), (17, 33, 45), (16, 32, 16), (35, 65, 100), (33, 401, 530), (20, 770, 40)])
        func shapes(_ s: (Int, Int, Int)) {
            for bLinear in [false, true] { for cLinear in [false, true] { for acc in [false, true] {
                checkGemm(M: s.0, K: s.1, N: s.2, bLinear: bLinear, cLinear: cLinear, accumulate: acc)
            } } }
        }

        @Test func subRangesAndLeadingDimensions() {
            for bLinear in [false, true] { for cLinear in [false, true] {
                checkGemm(M: 19, K: 37, N: 70, n0: 5, n1: 61, bLinear: bLinear, cLinear: cLinear, accumulate: true)
                checkGemm(M: 19, K: 37, N: 600, n0: 17, n1: 590, bLinear: bLinear, cLinear: cLinear, accumulate: false, pad: 3)
                checkGemm(M: 5, K: 9, N: 40, n0: 39, n1: 40, bLinear: bLinear, cLinear: cLinear, accumulate: false, pad: 1)
            } }
        }

        /// Strides that are neither 1 (the generic paths), through the Swift wrapper.
        @Test func generalStrides() throws {
            let (M, K, N) = (13, 21, 23)
            let w = randomTensor([M, K], seed: 5), b = randomTensor([K * N * 2], seed: 6)
            let c = Tensor(zeros: [M * N * 3])
            gemmBF16(try PackedBF16Matrix(w), b: b.pointer, rsb: 2, csb: 2 * K, n: N, c: c.pointer, rsc: 3, csc: 3 * M, accumulate: false)
            let expected = Tensor(zeros: [M * N * 3])
            for m in 0..<M { for n in 0..<N {
                var s: Double = 0
                for k in 0..<K { s += Double(Self.r(w.pointer[m * K + k])) * Double(Self.r(b.pointer[2 * k + 2 * K * n])) }
                expected.pointer[3 * m + 3 * M * n] = Float(s)
            } }
            expectClose(c, expected, relTol: 1e-5, "strided")
        }

        /// The vector rounding of B (both packing paths) agrees with pd_bf16_round: W = [1, 0],
        /// B [2, n] = (values, zeros), so C = the rounded values exactly (inf and NaN included).
        @Test func packingRoundsLikeScalar() throws {
            let values: [UInt32] = [0x3F80_8000, 0x3F81_8000, 0x3F80_8001, 0xBF81_8000, 0x7F7F_FFFF, 0x7F80_0000,
                                    0xFF80_0000, 0x7FC0_0000, 0x7F80_0001, 0x4049_0FDB, 0x3F7F_FFFF, 0xC2F6_E979,
                                    0x3F80_0000, 0x3F80_8000, 0x3F81_8000, 0x3F80_8001, 0xC000_8000]
            let n = values.count
            let w = try PackedBF16Matrix(Tensor(shape: [1, 2], scalars: [1, 0]))
            for linear in [false, true] {
                let b = Tensor(zeros: [2 * n])
                // n-contiguous: B[0, j] at j; k-contiguous: B[0, j] at 2j.
                for (j, v) in values.enumerated() { b.pointer[linear ? 2 * j : j] = Float(bitPattern: v) }
                let c = Tensor(zeros: [n])
                gemmBF16(w, b: b.pointer, rsb: linear ? 1 : n, csb: linear ? 2 : 1, n: n, c: c.pointer,
                         rsc: 1, csc: 1, accumulate: false)
                for (j, v) in values.enumerated() {
                    let want = Self.r(Float(bitPattern: v))
                    #expect(c.pointer[j].bitPattern == want.bitPattern || (c.pointer[j].isNaN && want.isNaN),
                            "\(String(v, radix: 16)) (\(linear ? "k" : "n")-contiguous): got \(c.pointer[j]), expected \(want)")
                }
            }
        }

        @Test func linearMatchesFP32OnRoundedInputs() throws {
            for (shape, out) in [([2, 37, 70], 45), ([600, 33], 20), ([1, 16], 1), ([3, 100, 64], 64)] {  // the last splits over cores
                let x = randomTensor(shape, seed: 7), w = randomTensor([out, shape.last!], seed: 8)
                let bias = randomTensor([out], seed: 9)
                let packed = try PackedBF16Matrix(w)
                expectClose(try linearBF16(x, weight: packed, bias: bias),
                            try linear(Self.rounded(x), weight: Self.rounded(w), bias: bias), relTol: 1e-5, "linear \(shape)")
                expectClose(try linearBF16(x, weight: packed),
                            try linear(Self.rounded(x), weight: Self.rounded(w)), relTol: 1e-5, "linear \(shape) no bias")
            }
        }

        @Test func convMatchesFP32OnRoundedInputs() throws {
            for bytes in [ConvBF16Tuning.current.blockBytes, 1024] {  // default blocks, and many small uneven ones
                try KernelTuning.with({ $0.convBF16.blockBytes = bytes }) {
                    for (b, c, h, w, o, k, s, p) in [(2, 5, 9, 11, 7, 3, 1, 1), (1, 6, 10, 7, 9, 3, 2, 1), (2, 8, 6, 5, 17, 1, 1, 0),
                                                     (1, 4, 7, 7, 3, 1, 2, 0), (3, 3, 8, 8, 33, 3, 1, 1)] {
                        let x = randomTensor([b, c, h, w], seed: 10), wt = randomTensor([o, c, k, k], seed: 11)
                        let bias = randomTensor([o], seed: 12)
                        let packed = try PackedBF16Matrix(wt)
                        let what = "conv \(k)×\(k) s\(s) p\(p) on \(x.shape), blocks of \(bytes) B"
                        expectClose(try conv2dBF16(x, weight: packed, kernel: k, bias: bias, stride: s, padding: p),
                                    try conv2d(Self.rounded(x), weight: Self.rounded(wt), bias: bias, stride: s, padding: p),
                                    relTol: 1e-5, what)
                        expectClose(try conv2dBF16(x, weight: packed, kernel: k, stride: s, padding: p),
                                    try conv2d(Self.rounded(x), weight: Self.rounded(wt), stride: s, padding: p),
                                    relTol: 1e-5, what + " no bias")
                    }
                }
            }
        }

        @Test func rejectsBadShapes() throws {
            let packed = try PackedBF16Matrix(randomTensor([4, 3, 3, 3], seed: 1))
            #expect(packed.rows == 4 && packed.columns == 27)
            #expect(throws: TensorError.self) { try conv2dBF16(randomTensor([1, 2, 5, 5], seed: 2), weight: packed, kernel: 3) }
            #expect(throws: TensorError.self) { try linearBF16(randomTensor([2, 26], seed: 2), weight: packed) }
            #expect(throws: TensorError.self) { try PackedBF16Matrix(randomTensor([27], seed: 3)) }
        }
    }
}
