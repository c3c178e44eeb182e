import Testing
import TestSupport
@testable import Tensors

extension KernelTests {
    @Suite struct Convolution {
        let f = KernelFixtures.kernels

        func check(_ name: String, stride: Int, padding: Int) throws {
            let y = try conv2d(f.tensor("\(name).x"), weight: f.tensor("\(name).weight"), bias: f.tensor("\(name).bias"),
                               stride: stride, padding: padding)
            expectClose(y, try f.tensor("\(name).y"), name)
        }

        /// Every block size must give the same numbers.
        func forEachBlockSize(_ body: () throws -> Void) rethrows {
            for bytes in [0, 1024, 32 << 20] {  // whole image, tiny blocks (many, uneven), default
                try KernelTuning.with({ $0.conv.blockBytes = bytes }) { try body() }
            }
        }

        @Test func conv3x3() throws { try forEachBlockSize { try check("conv3x3", stride: 1, padding: 1) } }
        @Test func conv3x3Stride2() throws { try forEachBlockSize { try check("conv3x3s2", stride: 2, padding: 1) } }
        @Test func conv1x1() throws { try forEachBlockSize { try check("conv1x1", stride: 1, padding: 0) } }

        /// A naive direct convolution, for cases the fixture does not cover (no bias, odd sizes).
        func reference(_ x: Tensor, _ w: Tensor, stride s: Int, padding p: Int) -> Tensor {
            let (B, C, H, W) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
            let (O, kh, kw) = (w.shape[0], w.shape[2], w.shape[3])
            let OH = (H + 2 * p - kh) / s + 1, OW = (W + 2 * p - kw) / s + 1
            let y = Tensor(zeros: [B, O, OH, OW])
            for b in 0..<B { for o in 0..<O { for oh in 0..<OH { for ow in 0..<OW {
                var acc: Double = 0
                for c in 0..<C { for i in 0..<kh { for j in 0..<kw {
                    let ih = oh * s - p + i, iw = ow * s - p + j
                    guard ih >= 0, ih < H, iw >= 0, iw < W else { continue }
                    acc += Double(x.pointer[((b * C + c) * H + ih) * W + iw]) * Double(w.pointer[((o * C + c) * kh + i) * kw + j])
                } } }
                y.pointer[((b * O + o) * OH + oh) * OW + ow] = Float(acc)
            } } } }
            return y
        }

        @Test func oddShapesWithoutBias() throws {
            try forEachBlockSize {
                for (b, h, w, s, p, k) in [(1, 7, 9, 2, 1, 3), (3, 5, 4, 1, 1, 3), (2, 6, 6, 1, 0, 1), (1, 4, 5, 2, 0, 1), (1, 8, 8, 1, 0, 3)] {
                    let x = randomTensor([b, 5, h, w], seed: 11), wt = randomTensor([6, 5, k, k], seed: 12)
                    expectClose(try conv2d(x, weight: wt, stride: s, padding: p), reference(x, wt, stride: s, padding: p),
                                "conv \(k)x\(k) s\(s) p\(p) on \(x.shape)")
                }
            }
        }

        @Test func rejectsBadShapes() throws {
            let x = randomTensor([1, 4, 5, 5], seed: 1)
            #expect(throws: TensorError.self) { try conv2d(x, weight: randomTensor([2, 3, 3, 3], seed: 2), padding: 1) }
            #expect(throws: TensorError.self) { try conv2d(x, weight: randomTensor([2, 4, 3, 3], seed: 2), bias: randomTensor([3], seed: 3)) }
            #expect(throws: TensorError.self) { try conv2d(x, weight: randomTensor([2, 4, 7, 7], seed: 2)) }
            #expect(throws: TensorError.self) { try conv2d(x, weight: randomTensor([2, 4, 3, 3], seed: 2), stride: 0) }
            #expect(throws: TensorError.self) { try conv2d(randomTensor([4, 5, 5], seed: 1), weight: randomTensor([2, 4, 3, 3], seed: 2)) }
        }
    }
}
