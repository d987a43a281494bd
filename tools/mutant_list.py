"""The mutants of tools/mutants.py: one small, plausible bug each, with the tests that must catch it.

``old`` must occur exactly once in ``path`` (or, after the code moved, in one file under src/);
``new`` replaces it in a temporary copy. docs/TESTING.md records the last run.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Mutant:
    name: str
    path: str  # where the text is expected (relative to the repository)
    old: str
    new: str
    tests: tuple[str, ...]  # pytest arguments: files, node ids, -k expressions
    bug: str  # the plausible bug, in words


MUTANTS: tuple[Mutant, ...] = (
    # -- the pair sampler ---------------------------------------------------------------------------
    Mutant(
        "sampler-eval-negative-own-video", "src/l3net/data/sampler.py",
        "                        j = int(rng.integers(len(videos) - 1))\n                        audio = videos[j + (j >= i)]",
        "                        audio = videos[int(rng.integers(len(videos)))]",
        ("tests/test_sampler.py", "-k", "evaluation_pairs"),
        "evaluation negatives may take audio from their own video",
    ),
    Mutant(
        "sampler-eval-positive-anywhere", "src/l3net/data/sampler.py",
        "start = positive_start(video.frame_times[frame], video.num_samples, self.clip, rng.random())",
        "start = int(rng.integers(video.num_samples - self.clip + 1))",
        ("tests/test_sampler.py", "-k", "evaluation_pairs"),
        "evaluation positives take their audio anywhere in the video",
    ),
    Mutant(
        "sampler-eval-corner-crop", "src/l3net/data/sampler.py",
        "            x, y = (rw - size) // 2, (rh - size) // 2",
        "            x, y = 0, 0",
        ("tests/test_sampler.py", "-k", "evaluation_pairs"),
        "evaluation crops the top-left corner instead of the centre",
    ),
    Mutant(
        "sampler-train-negative-own-video", "src/l3net/data/sampler.py",
        "                audio = videos[j + (j >= v)]",
        "                audio = videos[min(int(u[1] * n), n - 1)]",
        ("tests/test_sampler.py", "-k", "training_pairs"),
        "training negatives may take audio from their own video",
    ),
    Mutant(
        "sampler-overlap-closed-interval", "src/l3net/data/sampler.py",
        "    lo = max(math.floor((t - clip_s) * SAMPLE_RATE) + 1, 0)",
        "    lo = max(math.floor((t - clip_s) * SAMPLE_RATE), 0)",
        ("tests/test_sampler.py", "-k", "positive_start or training_pairs"),
        "a positive's clip may start exactly 1 s before the frame (t - 1 <= s instead of t - 1 < s)",
    ),
    Mutant(
        "sampler-resume-restarts-stream", "src/l3net/data/sampler.py",
        "        first = self.start_step + worker",
        "        first = worker",
        ("tests/test_sampler.py", "-k", "resume"),
        "a resumed sampler starts its stream from step 0 again",
    ),
    # -- training: exact resume -----------------------------------------------------------------------
    Mutant(
        "train-no-rng-restore", "src/l3net/train/state.py",
        '        set_rng_state(checkpoint["rng"][rank])',
        "        pass",
        ("tests/test_train_resume.py", "-k", "global_generator"),
        "resume does not restore the Python/NumPy/torch generators",
    ),
    Mutant(
        "train-resume-data-from-step-0", "src/l3net/train/data.py",
        "        start_step=step if train else 0,",
        "        start_step=0,",
        ("tests/test_train_resume.py",),
        "a resumed run reads the pair stream from its beginning again",
    ),
    Mutant(
        "train-no-weight-decay", "src/l3net/train/model.py",
        "model.parameters(), lr=config.lr, weight_decay=config.weight_decay, fused=",
        "model.parameters(), lr=config.lr, fused=",
        ("tests/test_train_ddp.py",),
        "Adam without the paper's L2 weight decay",
    ),
    Mutant(
        "train-validates-on-train-split", "src/l3net/train/data.py",
        '        "train" if train else "val",',
        '        "train",',
        ("tests/test_train_ddp.py",),
        "validation (and the choice of the best model) on training videos",
    ),
    Mutant(
        "sampler-eval-keeps-augmentation", "src/l3net/data/sampler.py",
        "        self.augment = augment if train else NO_AUGMENT",
        "        self.augment = augment",
        ("tests/test_sampler.py", "-k", "evaluation_pairs"),
        "evaluation keeps the training augmentation settings",
    ),
    # -- front end and model --------------------------------------------------------------------------
    Mutant(
        "openl3-pytorch-batchnorm-eps", "src/l3net/config.py",
        "    batchnorm_eps=1e-3,",
        "    batchnorm_eps=1e-5,",
        ("tests/test_golden.py", "-k", "openl3-linear"),
        "OpenL3's BatchNorm with PyTorch's eps (1e-5) instead of Keras' (1e-3)",
    ),
    Mutant(
        "spectrogram-symmetric-window", "src/l3net/spectrogram.py",
        'window_fn = {"hann": torch.hann_window,',
        'window_fn = {"hann": lambda n: torch.hann_window(n, periodic=False),',
        ("tests/test_spectrogram.py",),
        "a symmetric Hann window instead of scipy's periodic one",
    ),
    Mutant(
        "spectrogram-log-floor-clamp", "src/l3net/spectrogram.py",
        "logspec = torch.log(magnitude + cfg.log_floor)",
        "logspec = torch.log(magnitude.clamp(min=cfg.log_floor))",
        ("tests/test_spectrogram.py", "tests/test_embed.py", "-k", "spectrogram or golden"),
        "the log floor clamps instead of adding (differs in quiet bins only)",
    ),
    Mutant(
        "model-images-not-scaled", "src/l3net/models.py",
        "x = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()",
        "x = images.float()",
        ("tests/test_models.py", "tests/test_embed.py", "-k", "golden or image or normal"),
        "uint8 images are not scaled to [0, 1] before normalisation",
    ),
    Mutant(
        "model-audio-transfer-after-relu", "src/l3net/models.py",
        'return prerelu if modality == "audio" and prerelu in tower.feature_names else tower.last_conv',
        "return tower.last_conv",
        ("tests/test_models.py", "tests/test_eval_features.py"),
        "the audio transfer feature is taken after the ReLU (the paper: before)",
    ),
    Mutant(
        "framing-windows-not-centred", "src/l3net/framing.py",
        "    return round(k * hop_size * sample_rate) - (window // 2 if center else 0)",
        "    return round(k * hop_size * sample_rate)",
        ("tests/test_embed.py", "-k", "window or frame or golden or center"),
        "center=True windows start at their timestamp instead of being centred on it",
    ),
    Mutant(
        "subclips-not-to-the-end", "src/l3net/evaluate/sound.py",
        "    hop = span / (count - 1)",
        "    hop = span / count",
        ("tests/test_eval_sound.py", "-k", "subclip"),
        "Table 2's subclips stop a step before the end of the recording",
    ),
    # -- evaluation protocols -------------------------------------------------------------------------
    Mutant(
        "svm-z-score-refit-on-test", "src/l3net/evaluate/classify.py",
        "        sub_scores = class_scores(classifier, features[test_sub], n_classes)",
        "        classifier.steps[0][1].fit(features[test_sub])\n"
        "        sub_scores = class_scores(classifier, features[test_sub], n_classes)",
        ("tests/test_protocol_reference.py", "tests/test_eval_sound.py", "tests/test_eval_probe.py", "-m", "not slow"),
        "z-scoring refitted on the test subclips (Table 2 and the probe)",
    ),
    Mutant(
        "svm-z-score-not-centred", "src/l3net/evaluate/sound.py",
        "svm = make_pipeline(StandardScaler(), LinearSVM(C=DEFAULT_C))",
        "svm = make_pipeline(StandardScaler(with_mean=False), LinearSVM(C=DEFAULT_C))",
        ("tests/test_protocol_reference.py", "tests/test_eval_sound.py", "-m", "not slow"),
        "z-scoring without centring (Table 2)",
    ),
    Mutant(
        "probe-z-score-not-scaled", "src/l3net/evaluate/probe/inmemory.py",
        "return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=MAX_ITER))",
        "return make_pipeline(StandardScaler(with_std=False), LogisticRegression(C=C, max_iter=MAX_ITER))",
        ("tests/test_protocol_reference.py", "tests/test_eval_probe.py", "-m", "not slow"),
        "the probe centres its features but does not scale them",
    ),
    Mutant(
        "recordings-by-vote", "src/l3net/evaluate/classify.py",
        "        predicted = rec_scores.argmax(axis=1)",
        "        predicted = recording_scores(np.eye(n_classes)[sub_scores.argmax(axis=1)], local,"
        " len(split.test)).argmax(axis=1)",
        ("tests/test_protocol_reference.py", "tests/test_eval_sound.py", "-m", "not slow"),
        "a test recording is decided by a vote of its subclips, not their mean score",
    ),
    Mutant(
        "folds-mix-groups", "src/l3net/evaluate/splits.py",
        "        parts = list(splitter.split(indices, labels, groups))",
        "        parts = list(StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(indices, labels))",
        ("tests/test_protocol_reference.py", "tests/test_eval_datasets.py"),
        "cross-validation folds ignore the groups (a session in train and test)",
    ),
    Mutant(
        "random-twin-is-the-model", "src/l3net/modelspec.py",
        "    return build_model(model.config, seed=seed + RANDOM_TWIN_SEED_OFFSET).to(device).eval()",
        "    return model.eval()",
        ("tests/test_protocol_reference.py", "-k", "twin"),
        "the 'random weights' row is the trained network itself",
    ),
    Mutant(
        "probe-random-row-is-the-model", "src/l3net/evaluate/probe/inmemory.py",
        "[(RANDOM_ROW, s, net) for s, net in twins]",
        "[(RANDOM_ROW, s, model) for s, net in twins]",
        ("tests/test_protocol_reference.py", "-k", "probe"),
        "Table 3's 'random weights' row probes the trained network again",
    ),
    Mutant(
        "nmi-adjusted-for-chance", "src/l3net/evaluate/cluster.py",
        "return float(normalized_mutual_info_score(np.asarray(labels), np.asarray(assignment)))",
        "return float(__import__('sklearn.metrics').metrics.adjusted_mutual_info_score("
        "np.asarray(labels), np.asarray(assignment)))",
        ("tests/test_protocol_reference.py", "tests/test_eval_cluster.py", "-k", "nmi or kmeans"),
        "the clustering reports adjusted MI instead of the paper's NMI",
    ),
    Mutant(
        "avc-score-of-wrong-class", "src/l3net/evaluate/avc.py",
        "(images, waveforms).float(), dim=-1)[:, 1]",
        "(images, waveforms).float(), dim=-1)[:, 0]",
        ("tests/test_eval_avc.py",),
        "AVC scores a pair with the probability of 'does not correspond'",
    ),
    Mutant(
        "recordings-summed", "src/l3net/evaluate/classify.py",
        "    return sums / counts[:, None]",
        "    return sums",
        ("tests/test_protocol_reference.py", "tests/test_eval_sound.py", "-m", "not slow"),
        "a recording's scores are the sum of its subclips' (the same top class; other numbers)",
    ),
    Mutant(
        "units-bottom-inputs", "src/l3net/evaluate/units/ranking.py",
        "        order = np.lexsort((tiebreak, -acts[:, u]))",
        "        order = np.lexsort((tiebreak, acts[:, u]))",
        ("tests/test_eval_units.py", "-k", "test_top_inputs or test_ties"),
        "a unit's 'top' inputs are its least activating ones",
    ),
    # -- training: augmentation, int16 audio, the speed figures ------------------------------------------
    Mutant(
        "sampler-flip-never-set", "src/l3net/data/sampler.py",
        "crop_x=u[2], crop_y=u[3], flip=bool(u[4] < aug.flip),",
        "crop_x=u[2], crop_y=u[3],",
        ("tests/test_augment_stats.py", "-k", "drawn"),
        "training pairs are never flipped (the pair's flip keeps its default, False)",
    ),
    Mutant(
        "sampler-flip-ignores-probability", "src/l3net/data/sampler.py",
        "flip=bool(u[4] < aug.flip)",
        "flip=bool(u[4] < 0.5)",
        ("tests/test_augment_stats.py", "-k", "does_not_augment"),
        "the flip probability is the default's 0.5 whatever the configuration says",
    ),
    Mutant(
        "sampler-int16-scale", "src/l3net/data/sampler.py",
        "p.gain / 32768.0",
        "p.gain / 32767.0",
        ("tests/test_sampler.py", "-k", "training_pairs or int16 or evaluation_pairs"),
        "int16 samples scaled by 1/32767 instead of 1/32768 (not the stored float audio)",
    ),
    Mutant(
        "train-interval-clock-before-sync", "src/l3net/train/loop.py",
        "stats = self._interval_stats(meter.losses, meter.correct)\n"
        "        elapsed, wall = meter.lap(self.config.batch_size)",
        "elapsed, wall = meter.lap(self.config.batch_size)\n"
        "        stats = self._interval_stats(meter.losses, meter.correct)",
        ("tests/test_train_timing.py", "-k", "pairs_per_s"),
        "a speed interval's clock is read before the host sync (the device's queued work counts in the next interval)",
    ),
    # -- checkpoints --------------------------------------------------------------------------------
    Mutant(
        "checkpoint-saved-only-entry-ignored", "src/l3net/checkpoint.py",
        "for key in [*current, *(k for k in saved if k not in current)]:",
        "for key in current:",
        ("tests/test_checkpoint.py",),
        "a fingerprint entry only the checkpoint has is not compared (a setting that went away resumes silently)",
    ),
    Mutant(
        "checkpoint-resume-unchecked", "src/l3net/checkpoint.py",
        "    check_fingerprint(checkpoint, fingerprint, names=names, advice=advice)\n    return checkpoint.state",
        "    return checkpoint.state",
        ("tests/test_checkpoint.py",),
        "resume_checkpoint reads the state without checking its fingerprint",
    ),
    Mutant(
        "shards-fingerprint-settings-only", "src/l3net/data/shards.py",
        "digest.update(path.name.encode())",
        "pass",
        ("tests/test_shards.py", "-k", "fingerprint"),
        "the data fingerprint is the settings only: a run resumes on more or other shards",
    ),
    # -- inputs and inference ---------------------------------------------------------------------------
    Mutant(
        "inputs-upscale-rule-ignored", "src/l3net/inputs.py",
        "return resize_smaller_side(image, scaled_side(config, side, resize, crop))",
        "return resize_smaller_side(image, resize)",
        ("tests/test_one_input.py", "tests/test_openl3_parity.py", "-k", "image or avc_pairs"),
        "OpenL3's rule ignored: an image whose smaller side is between the crop and the resize is scaled, not only cropped",
    ),
    Mutant(
        "inference-pad-to-largest-seen", "src/l3net/inference.py",
        "bucket = bucket_for(n, self.buckets)",
        "bucket = max([bucket_for(n, self.buckets)] + [key[-1] for key in self._graphs])",
        ("tests/test_inference.py", "-k", "grew or buckets"),
        "a batch is padded to the largest bucket compiled so far, not the smallest that holds it",
    ),
    # -- media: the audio clock, format changes, size changes -------------------------------------------
    Mutant(
        "clock-gap-at-the-tolerance", "src/l3net/media/clock.py",
        "if lead > 0 and (first or lead > tolerance):",
        "if lead > 0 and (first or lead >= tolerance):",
        ("tests/test_audio_clock.py",),
        "a drift of exactly the tolerance becomes a gap of silence",
    ),
    Mutant(
        "clock-sample-truncated", "src/l3net/media/clock.py",
        "lead = round(frame.time * rate) - self.position",
        "lead = int(frame.time * rate) - self.position",
        ("tests/test_audio_clock.py",),
        "a frame's timestamp is truncated to a sample, not rounded (one sample early where float rounding falls under it)",
    ),
    Mutant(
        "audio-no-end-padding", "src/l3net/media/audio.py",
        "end = clock.end if has_picture else None",
        "end = None",
        ("tests/test_timing.py", "-k", "process_video_file and short_audio"),
        "a video's sound is not padded with silence to the end of its picture",
    ),
    Mutant(
        "resampling-rebuild-not-trimmed", "src/l3net/media/resampling.py",
        "out = [whole[: max(0, whole.size + short)]]",
        "out = [whole]",
        ("tests/test_broadcast.py", "-k", "rebuilt"),
        "at an audio format change the old graph's output is not cut to its input's length (a sample more)",
    ),
    Mutant(
        "video-size-follows-the-frames", "src/l3net/media/video.py",
        "self.report.size_changes.append(change)",
        "self.report.size_changes.append(change)\n"
        "            self.size = _target_size(*_display_size(*coded, self.aspect), self.smaller_side)",
        ("tests/test_midstream.py", "-k", "size_changes"),
        "after a mid-stream size change, frames come at the new size (not the first frame's)",
    ),
    # -- prepare --------------------------------------------------------------------------------------
    Mutant(
        "prepare-frame-times-from-file-start", "src/l3net/data/prepare_video.py",
        "    times = [round(t - config.start, 6) for t, _ in decoded]",
        "    times = [round(t, 6) for t, _ in decoded]",
        ("tests/test_prepare.py", "-m", "not slow"),
        "stored frame times count from the file's start, not from the sample's first audio sample",
    ),
)
