"""Shared machinery every plugin may use: the code several plugins need, kept in one place.

- :mod:`~devis_core.toolkit.geometry`: cameras, the forward warp, depth helpers and alignment,
  trajectories and pose interpolation.
- :mod:`~devis_core.toolkit.accumulation`: what every ADEVIS strategy shares (the camera path,
  one step's conditions, the one-step conditions of a sample).
- :mod:`~devis_core.toolkit.media`: reading and writing videos, depth maps and figures.
- :mod:`~devis_core.toolkit.files`: atomic writes (the one helper for them).
- :mod:`~devis_core.toolkit.results`: append-only JSONL record logs that survive a crash,
  each record reused only under the key of the config it was computed with.
- :mod:`~devis_core.toolkit.measures`: image-quality formulas metrics and rewards both use.
- :mod:`~devis_core.toolkit.lpips_network`, :mod:`~devis_core.toolkit.clip_network`,
  :mod:`~devis_core.toolkit.musiq_network`: pretrained networks that several metric and reward
  plugins load from local files.
- :mod:`~devis_core.toolkit.model_directories`, :mod:`~devis_core.toolkit.weights`: loading
  diffusers-style model directories and local weight files, with errors that name the file.
- :mod:`~devis_core.toolkit.dataset_files`: reading real datasets' files and cameras.

Nothing here knows a plugin, an engine or a config: each module takes tensors, paths and
plain values, so a third-party plugin can use it exactly as the built-ins do.
"""
