"""BFV (SEAL) linear layers after Cheetah: coefficient-encoded conv and matmul."""
