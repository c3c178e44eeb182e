import Testing
@testable import Tensors

extension KernelTests {
    @Suite struct Conversion {
        let f = KernelFixtures.kernels

        func convert(_ bits: [UInt16], bf16: Bool) -> [Float] {
            var out = [Float](repeating: .nan, count: bits.count)
            bits.withUnsafeBufferPointer { src in
                out.withUnsafeMutableBufferPointer { dst in
                    if bf16 { convertBFloat16ToFloat(src.baseAddress!, dst.baseAddress!, count: bits.count) }
                    else { convertHalfToFloat(src.baseAddress!, dst.baseAddress!, count: bits.count) }
                }
            }
            return out
        }

        @Test(arguments: [("f16", false), ("bf16", true)])
        func matchesFixtureBitForBit(_ name: String, _ bf16: Bool) throws {
            let bits = try f.halfBits("convert.\(name)")
            let expected = try f.tensor("convert.\(name)_as_f32").scalars
            forEachISA { isa in
                let got = convert(bits, bf16: bf16)
                let bad = zip(got, expected).enumerated().first { $0.element.0.bitPattern != $0.element.1.bitPattern }
                #expect(bad == nil, "\(name) [\(isa)]: element \(bad?.offset ?? -1) of bits \(String(bits[bad?.offset ?? 0], radix: 16)) → \(bad?.element.0 ?? 0), expected \(bad?.element.1 ?? 0)")
            }
        }

        /// All 65 536 patterns, NaNs included, agree bit for bit on every ISA path, with Swift's
        /// Float16 for non-NaNs and with quiet NaNs of the same sign and payload (as F16C gives).
        @Test func everyHalfPattern() throws {
            let bits = (0...UInt16.max).map { $0 }
            var firstPath: [Float]?
            forEachISA { isa in
                let got = convert(bits, bf16: false)
                for (h, v) in zip(bits, got) {
                    let expected: UInt32
                    if h & 0x7C00 == 0x7C00 && h & 0x3FF != 0 {
                        expected = UInt32(h & 0x8000) << 16 | 0x7FC0_0000 | UInt32(h & 0x3FF) << 13
                    } else {
                        expected = Float(Float16(bitPattern: h)).bitPattern
                    }
                    if v.bitPattern != expected {
                        Issue.record("f16 [\(isa)] \(String(h, radix: 16)) → \(String(v.bitPattern, radix: 16)), expected \(String(expected, radix: 16))")
                        return
                    }
                }
                if let firstPath { #expect(firstPath.map(\.bitPattern) == got.map(\.bitPattern), "\(isa) differs from baseline") }
                firstPath = got
                let b = convert(bits, bf16: true)
                #expect(zip(bits, b).allSatisfy { UInt32($0) << 16 == $1.bitPattern }, "bf16 [\(isa)]")
            }
        }

        /// Large counts are split over threads at arbitrary (odd) boundaries.
        @Test func largeUnalignedCounts() throws {
            let n = 1_000_003
            var g = SplitMix(17)
            let bits = (0..<n).map { _ in UInt16(truncatingIfNeeded: g.next()) & 0x7BFF }  // finite halves
            let got = convert(bits, bf16: false)
            #expect(zip(bits, got).allSatisfy { Float(Float16(bitPattern: $0)).bitPattern == $1.bitPattern })
            // Offset source pointer (2-byte aligned only).
            var out = [Float](repeating: 0, count: n - 1)
            bits.withUnsafeBufferPointer { src in
                out.withUnsafeMutableBufferPointer { convertBFloat16ToFloat(src.baseAddress! + 1, $0.baseAddress!, count: n - 1) }
            }
            #expect(zip(bits.dropFirst(), out).allSatisfy { UInt32($0) << 16 == $1.bitPattern })
        }
    }
}
