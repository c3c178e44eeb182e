import Testing
@testable import Checkpoints

@Suite struct HalfConversion {
    @Test func everyHalfRoundTripsThroughFloat() {
        let all = (0...0xFFFF).map { UInt16($0) }
        var floats = [Float](repeating: 0, count: all.count)
        all.withUnsafeBufferPointer { src in
            floats.withUnsafeMutableBufferPointer { convertF16toF32(src.baseAddress!, $0.baseAddress!, count: all.count) }
        }
        var back = [UInt16](repeating: 0, count: all.count)
        floats.withUnsafeBufferPointer { src in
            back.withUnsafeMutableBufferPointer { convertF32toF16(src.baseAddress!, $0.baseAddress!, count: all.count) }
        }
        for h in all {
            let f = floats[Int(h)]
            if f.isNaN { #expect(back[Int(h)] & 0x7C00 == 0x7C00 && back[Int(h)] & 0x3FF != 0) } else {
                #expect(back[Int(h)] == h, "half 0x\(String(h, radix: 16))")
                #expect(f == Float(Float16(bitPattern: h)))
            }
        }
    }

    @Test func floatToHalfRoundsToNearestEven() {
        let cases: [(Float, UInt16)] = [
            (1 + 0x1p-11, 0x3C00),  // exactly halfway, even stays
            (1 + 3 * 0x1p-11, 0x3C02),  // halfway, rounds up to even
            (65519, 0x7BFF), (65520, 0x7C00), (-1e10, 0xFC00),
            (0x1p-25, 0x0000), (0x1.8p-25, 0x0001), (0x1p-24, 0x0001), (0x1.ffcp-15, 0x0400),
        ]
        for (f, h) in cases {
            var out: UInt16 = 0
            withUnsafePointer(to: f) { convertF32toF16($0, &out, count: 1) }
            #expect(out == h, "\(f)")
        }
    }

    @Test func bfloat16() {
        let src: [UInt16] = [0x3F80, 0xC000, 0x7F80, 0x0001]
        var dst = [Float](repeating: 0, count: 4)
        src.withUnsafeBufferPointer { s in dst.withUnsafeMutableBufferPointer { convertBF16toF32(s.baseAddress!, $0.baseAddress!, count: 4) } }
        #expect(dst[0] == 1 && dst[1] == -2 && dst[2] == .infinity && dst[3] == Float(bitPattern: 0x10000))
        let fs: [Float] = [1 + 0x1p-8, 1 + 3 * 0x1p-8, .nan, -0.0]
        var out = [UInt16](repeating: 0, count: 4)
        fs.withUnsafeBufferPointer { s in out.withUnsafeMutableBufferPointer { convertF32toBF16(s.baseAddress!, $0.baseAddress!, count: 4) } }
        #expect(out[0] == 0x3F80 && out[1] == 0x3F82 && out[2] & 0x7F80 == 0x7F80 && out[2] & 0x7F != 0 && out[3] == 0x8000)
    }

    /// kernels.safetensors holds torch's own widening of special and sampled F16/BF16 patterns.
    @Test func matchesTorchGoldens() throws {
        let k = try SafeTensorsFile(path: fixture("kernels.safetensors"))
        for (src, want) in [("convert.f16", "convert.f16_as_f32"), ("convert.bf16", "convert.bf16_as_f32")] {
            let s = try #require(k[src]), w = try #require(k[want])
            #expect(s.dtype == (src == "convert.f16" ? .f16 : .bf16) && w.dtype == .f32)
            #expect(s.elementCount > 1000)
            #expect(try s.float32().scalars.map(\.bitPattern) == w.float32().scalars.map(\.bitPattern))
        }
    }
}
