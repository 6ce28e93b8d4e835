"""latentd: performs neural-audio works unattended.

Loads nn~-format TorchScript models, generates latent trajectories, decodes them block by block,
routes the audio to a speaker layout, records it and takes commands from OSC and a schedule.
"""

__version__ = "0.1.0"
