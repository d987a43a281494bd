"""A model converted from OpenL3 works everywhere a model does: the embedding API, the file
functions and ``l3net embed``, ``l3net info``, the evaluations, HEAR and training (--init-from),
and a command that needs the AVC head it lacks says so.

The model: the mel128 and image fixtures of ../shared/data/openl3 (random weights in OpenL3's
layout; mel128 is the cheapest of OpenL3's audio networks), converted once for the module.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import l3net
from l3net.cli import main
from l3net.config import PRESETS
from l3net.errors import InputError, ModelFileError
from l3net.framing import window_count
from l3net.media import load_image
from l3net.models import build_model, load_model
from l3net.openl3 import CACHE_ENV, OPENL3_DIR_ENV, convert
from l3net.train import init_towers

from signals import noise, tone, write_audio


@pytest.fixture(scope="module")
def openl3_model(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = data_dir / "openl3"
    out = tmp_path_factory.mktemp("openl3") / "mel128"
    return convert([root / "openl3_audio_mel128_random.h5", root / "openl3_image_random.h5"], out)


@pytest.fixture
def openl3_spec(data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """``openl3:mel128-env`` resolvable: the fixtures under the published names, a cache in tmp_path."""
    folder = tmp_path / "published"
    folder.mkdir()
    os.symlink(data_dir / "openl3" / "openl3_audio_mel128_random.h5", folder / "openl3_audio_mel128_env.h5")
    os.symlink(data_dir / "openl3" / "openl3_image_random.h5", folder / "openl3_image_mel128_env.h5")
    monkeypatch.setenv(OPENL3_DIR_ENV, str(folder))
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    return "openl3:mel128-env"


def test_embedding_api_sizes_and_layers(openl3_model, data_dir):
    model = load_model(openl3_model)
    audio = np.random.default_rng(0).standard_normal(72_000).astype(np.float32) * 0.1
    emb, ts = l3net.get_audio_embedding(audio, 48_000, model=model, hop_size=0.25, embedding_size=6144)
    same, _ = l3net.get_audio_embedding(audio, 48_000, model=model, hop_size=0.25, layer="conv4_2")
    assert emb.shape == (window_count(72_000, 0.25, True, 48_000, framing="openl3"), 6144)
    assert np.array_equal(emb, same) and np.array_equal(ts, np.arange(len(ts)) * 0.25)
    # openl3's count of centred windows: 1.5 s at hop 0.25 -> 1 + ceil((72000 - 24000) / 12000) = 5
    assert len(ts) == 5
    small, _ = l3net.get_audio_embedding(audio, 48_000, model=model, hop_size=0.25, embedding_size=512)
    assert np.allclose(small, emb.reshape(len(emb), 4, 3, 512).max(axis=(1, 2)), atol=1e-5)  # pool4 = max of the grid
    image = load_image(data_dir / "photos" / "animal" / "tiger.jpg")
    assert l3net.get_image_embedding(image, model=model, embedding_size=8192).shape == (1, 8192)
    with pytest.raises(InputError, match="embedding_size=1234 is not one of .* 512 \\(pool4\\), 6144 \\(conv4_2\\)"):
        l3net.get_audio_embedding(audio, 48_000, model=model, embedding_size=1234)
    with pytest.raises(InputError, match="disagree"):
        l3net.get_image_embedding(image, model=model, layer="conv3_1", embedding_size=512)


def test_file_functions(openl3_model, data_dir, tmp_path):
    model = load_model(openl3_model)
    wav = data_dir / "audio" / "voice_front_center_48k_mono.wav"
    out = l3net.process_audio_file(wav, tmp_path, model=model, hop_size=0.5, embedding_size=6144)
    with np.load(out) as saved:
        assert saved["embedding"].shape[1] == 6144 and str(saved["model"]) == "openl3-mel128"
    photo = l3net.process_image_file(data_dir / "photos" / "nature" / "grass.jpg", tmp_path, model=model, embedding_size=8192)
    with np.load(photo) as saved:
        assert saved["embedding"].shape == (1, 8192)
    video = data_dir / "real_av" / "stream_of_water_h264_flac.mkv"
    audio_npz, image_npz = l3net.process_video_file(video, tmp_path, model=model, hop_size=1.0)
    with np.load(audio_npz) as a, np.load(image_npz) as v:
        assert np.array_equal(a["timestamps"], v["timestamps"]) and a["embedding"].shape[1] == v["embedding"].shape[1] == 512


def test_cli_embed_with_a_directory_and_an_openl3_name(openl3_model, openl3_spec, data_dir, tmp_path):
    wav = data_dir / "audio" / "voice_front_center_48k_mono.wav"
    for spec, out in ((str(openl3_model), tmp_path / "a"), (openl3_spec, tmp_path / "b")):
        assert main(["embed", str(wav), "--model", spec, "-o", str(out), "--hop-size", "0.5", "-q"]) == 0
        with np.load(out / "voice_front_center_48k_mono.npz") as saved:
            assert saved["embedding"].shape[1] == 512 and str(saved["model"]) == "openl3-mel128"
    with np.load(tmp_path / "a" / "voice_front_center_48k_mono.npz") as a, np.load(tmp_path / "b" / "voice_front_center_48k_mono.npz") as b:
        assert np.array_equal(a["embedding"], b["embedding"])  # the same files, the same weights


def test_cli_info(openl3_model, openl3_spec, capsys):
    assert main(["info", str(openl3_model)]) == 0
    text = capsys.readouterr().out
    assert "openl3-mel128" in text and "absent" in text and "converted_from" in text and "128 x 199" in text
    assert main(["info", openl3_spec, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["absent"] == ["head"] and info["transfer"]["audio"] == {"layer": "conv4_2", "dim": 6144}
    assert info["extra_config"]["converted_from"]["front_end"] == "mel128"


def _two_class_folder(root: Path) -> Path:
    for cls in ("tone", "noise"):
        (root / cls).mkdir(parents=True)
    for i in range(3):
        write_audio(root / "tone" / f"t{i}.wav", tone(300.0 + 50 * i, 1.0, sr=16000), sr=16000)
        write_audio(root / "noise" / f"n{i}.wav", noise(1.0, sr=16000, seed=i), sr=16000)
    return root


@pytest.mark.slow
def test_eval_sound(openl3_model, tmp_path, capsys):
    data = _two_class_folder(tmp_path / "data")
    out = tmp_path / "out"
    code = main(["eval", "sound", "--model", str(openl3_model), "--dataset", f"folder:{data}", "--out", str(out),
                 "--no-progress", "--batch-size", "8"])
    assert code == 0, capsys.readouterr().err
    metrics = json.loads((out / "eval" / "sound.json").read_text())["metrics"]
    assert metrics["l3"]["feature_dim"] == 6144 and metrics["dataset"]["recordings"] == 6


@pytest.mark.slow
def test_eval_probe(openl3_model, data_dir, tmp_path, capsys):
    images = tmp_path / "images"
    for part, take in (("train", slice(0, 2)), ("val", slice(2, 3))):
        for cls in ("animal", "nature"):
            (images / part / cls).mkdir(parents=True)
            for src in sorted((data_dir / "photos" / cls).iterdir())[take]:
                shutil.copy(src, images / part / cls / src.name)
    out = tmp_path / "out"
    code = main(["eval", "probe", "--model", str(openl3_model), "--images", str(images), "--out", str(out),
                 "--no-progress", "--batch-size", "4"])
    assert code == 0, capsys.readouterr().err
    assert json.loads((out / "eval" / "probe.json").read_text())["metrics"]["feature_dim"] == 8192


@pytest.mark.slow
def test_eval_cluster(openl3_model, synth_shards, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["eval", "cluster", "--model", str(openl3_model), "--data", str(synth_shards), "--out", str(out),
                 "--split", "val", "--k", "4", "--no-tsne", "--batch-size", "8", "--random-seeds", "1"])
    assert code == 0, capsys.readouterr().err
    nmi = json.loads((out / "eval" / "cluster.json").read_text())["metrics"]["nmi"]
    assert set(nmi) == {"vision", "audio"} and "L3-Net" in nmi["audio"]


def test_commands_that_need_the_head_say_so(openl3_model, synth_shards, tmp_path, capsys):
    code = main(["eval", "avc", "--model", str(openl3_model), "--data", str(synth_shards), "--out", str(tmp_path / "o"),
                 "--batch-size", "2", "--pairs-per-video", "1"])
    assert code == 2
    err = capsys.readouterr().err
    assert "no AVC fusion head" in err and "--init-from" in err and "Traceback" not in err


# ------------------------------------------------------------------------------------------------
# training OpenL3's architecture
# ------------------------------------------------------------------------------------------------
def test_init_towers_takes_the_towers_and_keeps_a_new_head(openl3_model):
    converted = load_model(openl3_model)
    model = build_model("openl3-mel128", seed=5)
    head = {k: v.clone() for k, v in model.head.state_dict().items()}
    init_towers(model, str(openl3_model))
    for part in ("vision", "audio"):
        for (k, a), b in zip(getattr(model, part).state_dict().items(), getattr(converted, part).state_dict().values()):
            assert torch.equal(a, b), k
    assert all(torch.equal(v, model.head.state_dict()[k]) for k, v in head.items())
    with pytest.raises(InputError, match="'openl3-mel128' network, not 'openl3-mel256'.*spectrogram.*--preset openl3-mel128"):
        init_towers(build_model("openl3-mel256"), str(openl3_model))


def test_init_from_a_one_tower_model_is_refused(data_dir, tmp_path):
    image_only = convert([data_dir / "openl3" / "openl3_image_random.h5"], tmp_path / "img")
    with pytest.raises(ModelFileError, match="has no audio network"):
        init_towers(build_model("openl3-mel256"), str(image_only))


@pytest.fixture
def cpu_openl3_preset(monkeypatch: pytest.MonkeyPatch) -> str:
    """openl3-mel128 at a CPU test size (narrow towers, 112/96 px frames): the same code path, the
    same front end and tower details, as a preset of the table for the duration of a test."""
    name = "openl3-mel128-cpu"
    monkeypatch.setitem(
        PRESETS, name,
        PRESETS["openl3-mel128"].replace(name=name, channels=(8, 16, 32, 64), image_resize=112, image_size=96,
                                         transfer_image_size=96),
    )
    return name


@pytest.mark.slow
def test_train_openl3_architecture_then_init_from(cpu_openl3_preset, synth_shards, tmp_path, capsys):
    common = ["--data", str(synth_shards), "--preset", cpu_openl3_preset, "--batch-size", "4", "--steps", "2",
              "--val-every", "0", "--val-pairs", "8", "--save-every", "2", "--no-progress"]
    first = tmp_path / "first"
    assert main(["train", "--out", str(first), *common]) == 0, capsys.readouterr().err
    model = load_model(first)
    assert model.config.name == cpu_openl3_preset and not model.absent  # trained with a fusion head
    assert model.audio.input_bn is not None and model.config.framing == "openl3"
    emb, _ = l3net.get_audio_embedding(np.zeros(48_000, np.float32), 48_000, model=model, embedding_size=64)
    assert emb.shape == (6, 64)  # 1 s, hop 0.1, centred: openl3's 1 + ceil(0.5 / 0.1) windows
    second = tmp_path / "second"
    assert main(["train", "--out", str(second), "--init-from", str(first), *common, "--steps", "1"]) == 0
    assert json.loads((second / "config.json").read_text())["train"]["init_from"] == str(first)
    capsys.readouterr()
    assert main(["train", "--out", str(tmp_path / "x"), "--init-from", str(first), *common[:2], "--preset",
                 "openl3-mel256", "--steps", "1", "--no-progress"]) == 2
    assert f"train with --preset {cpu_openl3_preset}" in capsys.readouterr().err


@pytest.mark.slow
def test_train_full_openl3_mel256_from_converted_towers(data_dir, synth_shards, tmp_path, capsys):
    root = data_dir / "openl3"
    converted = convert([root / "openl3_audio_mel256_random.h5", root / "openl3_image_random.h5"], tmp_path / "o3")
    run = tmp_path / "run"
    code = main(["train", "--data", str(synth_shards), "--out", str(run), "--preset", "openl3-mel256", "--init-from",
                 str(converted), "--batch-size", "2", "--steps", "1", "--val-every", "0", "--val-pairs", "2",
                 "--no-progress"])
    assert code == 0, capsys.readouterr().err
    trained = load_model(run)
    assert not trained.absent and trained.fuse(torch.zeros(1, 512), torch.zeros(1, 512)).shape == (1, 2)


# ------------------------------------------------------------------------------------------------
# HEAR
# ------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_hear_validator_passes_with_an_openl3_model(tmp_path):
    """hear-validator on OpenL3's architecture as a converted model has it (the dB mel front end, conv
    biases, input BatchNorms, plain conv4_2, openl3's framing, no fusion head), at a CPU width: the
    full network costs ~10 GFLOPs a window and the validator embeds hundreds of windows (a converted
    model took over 15 minutes on the shared 2-core test machine)."""
    validator = shutil.which("hear-validator", path=os.path.dirname(sys.executable)) or shutil.which("hear-validator")
    if validator is None:
        pytest.fail("hear-validator is not installed (pip install -e '.[hear]')")
    model = build_model(PRESETS["openl3-mel128"].replace(name="openl3-mel128-cpu", channels=(8, 16, 32, 64)))
    model.absent = frozenset({"head"})
    model.save(tmp_path / "model")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    result = subprocess.run(
        [validator, "l3net.hear", "-m", str(tmp_path / "model"), "-d", "cpu"], capture_output=True, text=True,
        env=env, timeout=900,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Looks good!" in result.stdout
