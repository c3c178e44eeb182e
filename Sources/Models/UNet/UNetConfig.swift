import Foundation

/// Shape of an SD 1.x `UNet2DConditionModel` (diffusers `unet/config.json` keys).
public struct UNetConfig: Sendable, Equatable {
    public var inChannels = 4
    public var outChannels = 4
    public var blockOutChannels = [320, 640, 1280, 1280]
    public var layersPerBlock = 2
    /// Attention heads per block, down order. SD 1.x configs call this `attention_head_dim`
    /// (a diffusers naming quirk: the value is the number of heads), as a number or a list.
    public var heads = [8, 8, 8, 8]
    public var crossAttentionDim = 768
    public var downBlockTypes = ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"]
    public var upBlockTypes = ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"]
    public var normGroups = 32
    public var normEps: Float = 1e-5
    public var flipSinToCos = true
    public var freqShift: Float = 0
    public var sampleSize = 64

    /// SD 1.5's UNet.
    public static let sd15 = UNetConfig()

    public init() {}

    public var timeEmbeddingDim: Int { blockOutChannels[0] * 4 }

    /// Transformer blocks with cross-attention (16 in SD 1.x): `layersPerBlock` in each
    /// cross-attention down block, one more in each such up block, one in the mid block.
    public var crossAttentionLayerCount: Int {
        let down = downBlockTypes.filter { $0 == "CrossAttnDownBlock2D" }.count * layersPerBlock
        let up = upBlockTypes.filter { $0 == "CrossAttnUpBlock2D" }.count * (layersPerBlock + 1)
        return down + 1 + up
    }

    public init(json data: Data, source: String) throws {
        guard let c = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw WeightLoadError(description: "\(source): expected a JSON object")
        }
        func ints(_ k: String) -> [Int]? { (c[k] as? [NSNumber])?.map(\.intValue) }
        func int(_ k: String) -> Int? { (c[k] as? NSNumber)?.intValue }
        if let v = int("in_channels") { inChannels = v }
        if let v = int("out_channels") { outChannels = v }
        if let v = ints("block_out_channels") { blockOutChannels = v }
        if let v = int("layers_per_block") { layersPerBlock = v }
        if let v = int("cross_attention_dim") { crossAttentionDim = v }
        if let v = c["down_block_types"] as? [String] { downBlockTypes = v }
        if let v = c["up_block_types"] as? [String] { upBlockTypes = v }
        if let v = int("norm_num_groups") { normGroups = v }
        if let v = (c["norm_eps"] as? NSNumber)?.floatValue { normEps = v }
        if let v = c["flip_sin_to_cos"] as? Bool { flipSinToCos = v }
        if let v = (c["freq_shift"] as? NSNumber)?.floatValue { freqShift = v }
        if let v = int("sample_size") { sampleSize = v }
        let n = blockOutChannels.count
        // `num_attention_heads` wins when present; else `attention_head_dim` holds the head count.
        let headKey = c["num_attention_heads"] is NSNull || c["num_attention_heads"] == nil ? "attention_head_dim" : "num_attention_heads"
        if let v = int(headKey) { heads = Array(repeating: v, count: n) } else if let v = ints(headKey) { heads = v }

        guard downBlockTypes.count == n, upBlockTypes.count == n, heads.count == n else {
            throw WeightLoadError(description: "\(source): block_out_channels, down/up_block_types and attention heads must have the same length")
        }
        let known = ["CrossAttnDownBlock2D", "DownBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"]
        for t in downBlockTypes + upBlockTypes where !known.contains(t) {
            throw WeightLoadError(description: "\(source): block type '\(t)' is not an SD 1.x block (expected \(known.joined(separator: ", ")))")
        }
        if let cs = c["class_embed_type"], !(cs is NSNull) {
            throw WeightLoadError(description: "\(source): class-conditioned UNets are not SD 1.x")
        }
        if c["addition_embed_type"] is String {
            throw WeightLoadError(description: "\(source): this UNet has addition embeddings (SDXL), not SD 1.x")
        }
        if c["use_linear_projection"] as? Bool == true {
            throw WeightLoadError(description: "\(source): linear projections in attention blocks (SD 2.x), not SD 1.x")
        }
        try requireSize(inChannels, "in_channels", 1...16, source: source)
        try requireSize(outChannels, "out_channels", 1...16, source: source)
        try requireSize(n, "the number of blocks", 1...8, source: source)
        try requireSize(layersPerBlock, "layers_per_block", 1...8, source: source)
        try requireSize(crossAttentionDim, "cross_attention_dim", 1...4096, source: source)
        try requireSize(normGroups, "norm_num_groups", 1...128, source: source)
        try requireSize(sampleSize, "sample_size", 1...1024, source: source)
        for (channels, h) in zip(blockOutChannels, heads) {
            try requireSize(channels, "block_out_channels", 1...4096, source: source)
            try requireSize(h, "attention heads", 1...64, source: source)
            try requireDivisible(channels, "block_out_channels", by: normGroups, "norm_num_groups", source: source)
            try requireDivisible(channels, "block_out_channels", by: h, "attention heads", source: source)
        }
    }
}
