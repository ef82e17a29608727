"""OATS: influence-scored training with guided diffusion augmentation (extra ``train``).

Modules: ``config`` (frozen configs), ``diffusion`` (noise schedule, DDPM loss,
DDIM sampler), ``unet`` (1-D U-Net denoiser and TimeDP-style prompt
conditioner), ``generator`` (training, sampling, checkpoints), ``metrics``
(feature-space MMD), ``data`` (series from stores and files, reference split),
``influence`` (per-sample gradients and TSIS), ``snr`` (the SNR gate, numpy
only), ``cache`` (score cache and the explore/exploit draw), ``augment`` (the
pretraining batch hook), ``wiring`` (the hook of ``s2gen pretrain --oats``) and
``cli``.

Importing this package imports nothing heavy; torch comes with the submodules.
"""
