import Foundation
import Tensors

/// Sinusoidal timestep features then two linear layers with SiLU (diffusers
/// `get_timestep_embedding` + `TimestepEmbedding`).
struct TimestepEmbedding {
    let channels: Int
    let flipSinToCos: Bool
    let freqShift: Float
    let linear1: Linear
    let linear2: Linear

    init(_ w: WeightBinder, channels: Int, embeddingDim: Int, flipSinToCos: Bool, freqShift: Float) {
        self.channels = channels
        self.flipSinToCos = flipSinToCos
        self.freqShift = freqShift
        linear1 = Linear(w.scoped("linear_1"), in: channels, out: embeddingDim)
        linear2 = Linear(w.scoped("linear_2"), in: embeddingDim, out: embeddingDim)
    }

    /// Sinusoids in float32 exactly as diffusers computes them (same operation order), so the
    /// UNet sees bit-identical features: `exp(-ln(10000)·i/(half − shift)) · t`, [sin | cos].
    func sinusoids(_ timesteps: [Float]) -> Tensor {  // [B, channels]
        let half = channels / 2
        let out = Tensor(zeros: [timesteps.count, channels])
        let logMax = Float(log(10000.0))
        for (b, t) in timesteps.enumerated() {
            let row = out.pointer + b * channels
            for i in 0..<half {
                let exponent = (-logMax * Float(i)) / (Float(half) - freqShift)
                let arg = t * Foundation.exp(exponent)
                let (s, c) = (Foundation.sin(arg), Foundation.cos(arg))
                if flipSinToCos { row[i] = c; row[half + i] = s } else { row[i] = s; row[half + i] = c }
            }
        }
        return out
    }

    func callAsFunction(_ timesteps: [Float]) throws -> Tensor {  // [B, embeddingDim]
        try linear2(silu(linear1(sinusoids(timesteps))))
    }
}
