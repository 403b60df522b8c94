"""Build a tiny ECAPA-TDNN checkpoint in SpeechBrain's own hyperparams layout.

The weights are random: the point is to exercise the real ``EncoderClassifier.from_hparams``
loading path offline, not to recognise anyone.
"""

from __future__ import annotations

from pathlib import Path

import analytic.torchaudio_compat  # noqa: F401  (before any speechbrain import)

HYPERPARAMS = """\
# Layout of speechbrain/spkrec-ecapa-voxceleb, shrunk: same classes, fewer channels.
n_mels: 40
pretrained_path: {folder}

compute_features: !new:speechbrain.lobes.features.Fbank
    n_mels: !ref <n_mels>

mean_var_norm: !new:speechbrain.processing.features.InputNormalization
    norm_type: sentence
    std_norm: False

embedding_model: !new:speechbrain.lobes.models.ECAPA_TDNN.ECAPA_TDNN
    input_size: !ref <n_mels>
    channels: [32, 32, 32, 32, 96]
    kernel_sizes: [5, 3, 3, 3, 1]
    dilations: [1, 2, 3, 4, 1]
    attention_channels: 16
    lin_neurons: {size}

modules:
    compute_features: !ref <compute_features>
    mean_var_norm: !ref <mean_var_norm>
    embedding_model: !ref <embedding_model>

pretrainer: !new:speechbrain.utils.parameter_transfer.Pretrainer
    loadables:
        embedding_model: !ref <embedding_model>
    paths:
        embedding_model: !ref <pretrained_path>/embedding_model.ckpt
"""


def build_tiny_ecapa(folder: Path, embedding_size: int = 48, seed: int = 0) -> Path:
    """Write ``hyperparams.yaml`` and ``embedding_model.ckpt`` into ``folder``."""
    import torch
    from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model = ECAPA_TDNN(
        input_size=40,
        channels=[32, 32, 32, 32, 96],
        kernel_sizes=[5, 3, 3, 3, 1],
        dilations=[1, 2, 3, 4, 1],
        attention_channels=16,
        lin_neurons=embedding_size,
    )
    torch.save(model.state_dict(), folder / "embedding_model.ckpt")
    (folder / "hyperparams.yaml").write_text(
        HYPERPARAMS.format(folder=folder.resolve(), size=embedding_size)
    )
    return folder
