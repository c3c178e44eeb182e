import Testing
@testable import Tensors

extension KernelTests {
    /// float32 → fp16 / bf16 rounding (holding fp32 checkpoints in 16 bits): round to nearest
    /// even as torch's `.half()` / `.bfloat16()`, on every ISA path.
    @Suite struct HalfRounding {
        /// Swift's `Float16(_: Float)` rounds to nearest even: the reference for fp16.
        static func referenceHalf(_ f: Float) -> UInt16 {
            f.isNaN ? 0 : Float16(f).bitPattern
        }

        /// bf16 = the top half of the float, rounded to nearest even on the low 16 bits.
        static func referenceBF16(_ f: Float) -> UInt16 {
            let x = f.bitPattern
            let low = x & 0xFFFF, high = x >> 16
            let up = low > 0x8000 || (low == 0x8000 && high & 1 == 1)
            return UInt16(truncatingIfNeeded: up ? high + 1 : high)
        }

        static let specials: [Float] = [
            0, -0, 1, -1, 1 + 0x1p-11, 1 + 0x1p-11 + 0x1p-23, 1 + 3 * 0x1p-11,  // ties to even, above a tie
            65504, 65519.99, 65520, -65520, 1e6, .infinity, -.infinity,          // largest half, overflow
            0x1p-14, 0x1p-24, 0x1p-25, 0x1p-25 + 0x1p-40, 3 * 0x1p-25, 0x1p-26,  // subnormal halves and ties
            .leastNonzeroMagnitude, .leastNormalMagnitude, .greatestFiniteMagnitude,
            1 + 0x1p-8, 1 + 3 * 0x1p-8, 1 + 0x1p-8 + 0x1p-20, 0.1, -2.5e-3]

        func round(_ values: [Float], _ format: HalfFormat) -> [UInt16] {
            let t = try! Tensor(shape: [values.count], scalars: values)
            let h = HalfTensor(rounding: t, to: format)
            return Array(UnsafeBufferPointer(start: h.storage.pointer, count: values.count))
        }

        @Test func specialValues() {
            forEachISA { isa in
                for (f, h) in zip(Self.specials, round(Self.specials, .fp16)) {
                    #expect(h == Self.referenceHalf(f), "fp16 [\(isa)] \(f): \(String(h, radix: 16))")
                }
                for (f, b) in zip(Self.specials, round(Self.specials, .bf16)) {
                    #expect(b == Self.referenceBF16(f), "bf16 [\(isa)] \(f): \(String(b, radix: 16))")
                }
                // NaN stays NaN (quiet), sign kept.
                let nans = round([.nan, -.nan, Float(bitPattern: 0x7F80_0001)], .fp16)
                #expect(nans.allSatisfy { $0 & 0x7C00 == 0x7C00 && $0 & 0x3FF != 0 }, "fp16 NaN [\(isa)]")
                let bnans = round([.nan, Float(bitPattern: 0x7F80_0001)], .bf16)
                #expect(bnans.allSatisfy { $0 & 0x7F80 == 0x7F80 && $0 & 0x7F != 0 }, "bf16 NaN [\(isa)]")
            }
        }

        /// 1M random bit patterns (all exponents; odd count so the vector tails run too).
        @Test func randomPatterns() {
            var g = SplitMix(5)
            let values = (0..<1_000_003).map { _ -> Float in
                let f = Float(bitPattern: UInt32(truncatingIfNeeded: g.next()))
                return f.isNaN ? 1 : f
            }
            forEachISA { isa in
                let h = round(values, .fp16), b = round(values, .bf16)
                let badH = values.indices.first { h[$0] != Self.referenceHalf(values[$0]) }
                let badB = values.indices.first { b[$0] != Self.referenceBF16(values[$0]) }
                #expect(badH == nil, "fp16 [\(isa)] \(badH.map { values[$0] } ?? 0)")
                #expect(badB == nil, "bf16 [\(isa)] \(badB.map { values[$0] } ?? 0)")
            }
        }

        /// A layer with a 16-bit weight computes exactly what float32 does with the widened weight.
        @Test func layersWidenExactly() throws {
            let x = randomTensor([2, 6, 9, 7], seed: 1), w = randomTensor([5, 6, 3, 3], seed: 2), bias = randomTensor([5], seed: 3)
            for format in [HalfFormat.fp16, .bf16] {
                let h = HalfTensor(rounding: w, to: format)
                let y = try conv2d(x, weight: .half(h), bias: bias, stride: 1, padding: 1)
                let reference = try conv2d(x, weight: h.float32(), bias: bias, stride: 1, padding: 1)
                #expect(y.scalars == reference.scalars, "conv2d \(format)")
                let lw = randomTensor([4, 7], seed: 4), lx = randomTensor([3, 7], seed: 5)
                let lh = HalfTensor(rounding: lw, to: format)
                #expect(try linear(lx, weight: .half(lh)).scalars == linear(lx, weight: lh.float32()).scalars, "linear \(format)")
            }
        }
    }
}
