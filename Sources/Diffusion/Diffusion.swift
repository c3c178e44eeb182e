// The diffusion layer: random numbers like torch, samplers, guidance, prompts, the pipeline.
import Tensors
