"""UnRAVEl as commands: encode audio into latents, take their statistics, generate patterns, decode.

Offline tools (``latentd unravel encode|stats|generate|decode``); ``latentio`` reads and writes latent
files (``.npy`` and latent WAV) for them and for the ``file`` and ``pattern`` sources. The modules are
imported one by one so that reading latent files never pulls in torch or matplotlib.
"""
