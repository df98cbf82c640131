"""pe_av_kernels: hand-written Triton kernels used by pe_av's ``attn_impl="triton"`` backend."""
