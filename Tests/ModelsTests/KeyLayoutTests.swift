import Testing
@testable import Models

@Suite("LDM → diffusers key layouts")
struct KeyLayoutTests {
    @Test("UNet keys (SD 1.x numbering, 2 layers per block)", arguments: [
        ("time_embed.0.weight", "time_embedding.linear_1.weight"),
        ("time_embed.2.bias", "time_embedding.linear_2.bias"),
        ("input_blocks.0.0.weight", "conv_in.weight"),
        ("input_blocks.1.0.in_layers.0.weight", "down_blocks.0.resnets.0.norm1.weight"),
        ("input_blocks.1.0.emb_layers.1.bias", "down_blocks.0.resnets.0.time_emb_proj.bias"),
        ("input_blocks.2.1.transformer_blocks.0.attn2.to_k.weight", "down_blocks.0.attentions.1.transformer_blocks.0.attn2.to_k.weight"),
        ("input_blocks.3.0.op.weight", "down_blocks.0.downsamplers.0.conv.weight"),
        ("input_blocks.4.0.skip_connection.weight", "down_blocks.1.resnets.0.conv_shortcut.weight"),
        ("input_blocks.11.0.out_layers.3.weight", "down_blocks.3.resnets.1.conv2.weight"),
        ("middle_block.1.proj_in.weight", "mid_block.attentions.0.proj_in.weight"),
        ("middle_block.2.out_layers.0.bias", "mid_block.resnets.1.norm2.bias"),
        ("output_blocks.2.1.conv.weight", "up_blocks.0.upsamplers.0.conv.weight"),
        ("output_blocks.5.2.conv.bias", "up_blocks.1.upsamplers.0.conv.bias"),
        ("output_blocks.4.1.norm.weight", "up_blocks.1.attentions.1.norm.weight"),
        ("output_blocks.11.0.in_layers.2.weight", "up_blocks.3.resnets.2.conv1.weight"),
        ("out.0.weight", "conv_norm_out.weight"),
        ("out.2.bias", "conv_out.bias"),
    ])
    func unet(ldm: String, diffusers: String) {
        #expect(KeyLayouts.unet(ldm: ldm, layersPerBlock: 2) == diffusers)
    }

    @Test("VAE keys", arguments: [
        ("encoder.down.0.block.1.conv2.weight", "encoder.down_blocks.0.resnets.1.conv2.weight"),
        ("encoder.down.2.downsample.conv.bias", "encoder.down_blocks.2.downsamplers.0.conv.bias"),
        ("encoder.down.1.block.0.nin_shortcut.weight", "encoder.down_blocks.1.resnets.0.conv_shortcut.weight"),
        ("decoder.up.3.block.0.norm1.weight", "decoder.up_blocks.0.resnets.0.norm1.weight"),
        ("decoder.up.1.upsample.conv.weight", "decoder.up_blocks.2.upsamplers.0.conv.weight"),
        ("decoder.mid.attn_1.q.weight", "decoder.mid_block.attentions.0.to_q.weight"),
        ("decoder.mid.attn_1.proj_out.bias", "decoder.mid_block.attentions.0.to_out.0.bias"),
        ("encoder.mid.attn_1.norm.weight", "encoder.mid_block.attentions.0.group_norm.weight"),
        ("encoder.mid.block_2.conv1.weight", "encoder.mid_block.resnets.1.conv1.weight"),
        ("decoder.norm_out.bias", "decoder.conv_norm_out.bias"),
        ("post_quant_conv.weight", "post_quant_conv.weight"),
    ])
    func vae(ldm: String, diffusers: String) {
        #expect(KeyLayouts.vae(ldm: ldm, levels: 4) == diffusers)
    }

    @Test("keys with no diffusers counterpart map to nil")
    func unmapped() {
        #expect(KeyLayouts.unet(ldm: "label_emb.0.0.weight", layersPerBlock: 2) == nil)
        #expect(KeyLayouts.vae(ldm: "loss.discriminator.main.0.weight", levels: 4) == nil)
    }
}
