import Foundation

/// Shape of SD 1.x's `AutoencoderKL` (diffusers `vae/config.json` keys).
public struct VAEConfig: Sendable, Equatable {
    public var inChannels = 3
    public var outChannels = 3
    public var blockOutChannels = [128, 256, 512, 512]
    public var layersPerBlock = 2
    public var latentChannels = 4
    public var normGroups = 32
    /// Latents the UNet sees are the VAE's times this factor.
    public var scalingFactor: Float = 0.18215

    public static let sd15 = VAEConfig()

    public init() {}

    /// Spatial downsampling factor (8 for SD).
    public var downFactor: Int { 1 << (blockOutChannels.count - 1) }

    public init(json data: Data, source: String) throws {
        guard let c = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw WeightLoadError(description: "\(source): expected a JSON object")
        }
        func int(_ k: String) -> Int? { (c[k] as? NSNumber)?.intValue }
        if let v = int("in_channels") { inChannels = v }
        if let v = int("out_channels") { outChannels = v }
        if let v = (c["block_out_channels"] as? [NSNumber])?.map(\.intValue) { blockOutChannels = v }
        if let v = int("layers_per_block") { layersPerBlock = v }
        if let v = int("latent_channels") { latentChannels = v }
        if let v = int("norm_num_groups") { normGroups = v }
        if let v = (c["scaling_factor"] as? NSNumber)?.floatValue { scalingFactor = v }
        for key in ["down_block_types", "up_block_types"] {
            for t in (c[key] as? [String]) ?? [] where !["DownEncoderBlock2D", "UpDecoderBlock2D"].contains(t) {
                throw WeightLoadError(description: "\(source): VAE block type '\(t)' is not supported (expected DownEncoderBlock2D/UpDecoderBlock2D)")
            }
        }
        try requireSize(inChannels, "in_channels", 1...16, source: source)
        try requireSize(outChannels, "out_channels", 1...16, source: source)
        try requireSize(blockOutChannels.count, "the number of blocks", 1...8, source: source)
        try requireSize(layersPerBlock, "layers_per_block", 1...8, source: source)
        try requireSize(latentChannels, "latent_channels", 1...64, source: source)
        try requireSize(normGroups, "norm_num_groups", 1...128, source: source)
        for channels in blockOutChannels {
            try requireSize(channels, "block_out_channels", 1...4096, source: source)
            try requireDivisible(channels, "block_out_channels", by: normGroups, "norm_num_groups", source: source)
        }
    }
}
