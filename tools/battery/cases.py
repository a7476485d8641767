"""The battery's cases: bad inputs and faults for every entry point, tried as a new user would,
and a few valid commands (controls) that must succeed.

Every case runs in its own copy of the fixtures (`fixtures.py`): `data/stories/` (a prepared
60-story corpus, 300-token BPE), `runs/base/` (a 4-step run of a tiny model with step and last
checkpoints), `corpus/` (good.jsonl, good.txt, emptydir/) and `notarun/` (a dir with a note).
Paths in the arguments are relative to that copy, the command's cwd.

Kinds: config (a value out of range, of the wrong type, or an unknown key/option), malformed
(a file of the wrong format or shape), filesystem (a path missing or of the wrong sort), fault
(read-only dir, full disk, port taken), identity (a run, checkpoint or corpus that does not
belong with the others), sampling (generation parameters).
"""

from __future__ import annotations

from tools.battery.commands import (
    CHAT_TIMEOUT,
    DATA,
    LAST,
    META,
    QUIET,
    RUN_CONFIG,
    SHARD,
    SPEC,
    TOKENIZER,
    TRAIN,
    chat,
    evaluate,
    export,
    generate,
    prepare,
    prepared,
    report,
    resume,
    train,
    train_prepared,
)
from tools.battery.faults import (
    flip_byte,
    full_disk,
    port_in_use,
    random_bytes,
    read_only,
    rebuild_corpus,
    remove,
    truncate,
    truncate_all,
    write,
)
from tools.battery.harness import Case

GOOD_JSONL = "data.source.path=corpus/good.jsonl"
GOOD_TXT = "data.source.path=corpus/good.txt"
JSONL_BROKEN = '{"text": "A fine first story."}\n{"text": "broken, no closing\n{"text": "ok"}\n'
NON_UTF8 = "Once upon a time, a caf\u00e9.\n".encode("latin-1") * 20 + b"\xff\xfe\x80\n"

PREPARE = [
    prepare("prepare_path_missing", "filesystem", "data.source.path=corpus/missing.jsonl"),
    prepare("prepare_path_unset", "config"),
    prepare(
        "prepare_empty_file",
        "malformed",
        "data.source.path=corpus/empty.txt",
        setup=write("corpus/empty.txt", ""),
    ),
    prepare(
        "prepare_whitespace_only",
        "malformed",
        "data.source.path=corpus/blank.txt",
        setup=write("corpus/blank.txt", "\n \n\t\n"),
    ),
    prepare(
        "prepare_broken_jsonl_line",
        "malformed",
        "data.source.path=corpus/bad.jsonl",
        setup=write("corpus/bad.jsonl", JSONL_BROKEN),
    ),
    prepare(
        "prepare_jsonl_not_objects",
        "malformed",
        "data.source.path=corpus/list.jsonl",
        setup=write("corpus/list.jsonl", '[1, 2]\n"a string"\n'),
    ),
    prepare(
        "prepare_fake_parquet",
        "malformed",
        "data.source.path=corpus/fake.parquet",
        setup=write("corpus/fake.parquet", "this is not parquet\n" * 50),
    ),
    prepare(
        "prepare_non_utf8_txt",
        "malformed",
        "data.source.path=corpus/latin1.txt",
        setup=write("corpus/latin1.txt", NON_UTF8),
    ),
    prepare(
        "prepare_null_text",
        "malformed",
        "data.source.path=corpus/null.jsonl",
        setup=write("corpus/null.jsonl", '{"text": "fine"}\n{"text": null}\n'),
    ),
    prepare(
        "prepare_missing_text_field",
        "malformed",
        "data.source.path=corpus/body.jsonl",
        setup=write("corpus/body.jsonl", '{"body": "no text key"}\n' * 5),
    ),
    prepare(
        "prepare_text_not_string",
        "malformed",
        "data.source.path=corpus/num.jsonl",
        setup=write("corpus/num.jsonl", '{"text": 123}\n{"text": ["a"]}\n'),
    ),
    prepare("prepare_text_field_wrong", "config", GOOD_JSONL, "data.source.text_field=content"),
    prepare("prepare_empty_dir", "filesystem", "data.source.path=corpus/emptydir"),
    prepare("prepare_glob_no_match", "filesystem", "data.source.path=corpus/*.xyz"),
    prepare(
        "prepare_bpe_vocab_100",
        "config",
        GOOD_JSONL,
        "data.tokenizer.vocab_size=100",
        tokenizer="bpe",
    ),
    prepare("prepare_unknown_tokenizer", "config", GOOD_JSONL, tokenizer="wordpiece"),
    prepare(
        "prepare_gpt2_files_missing",
        "filesystem",
        GOOD_JSONL,
        "+data.tokenizer.vocab_bpe=corpus/missing.bpe",
        "+data.tokenizer.encoder_json=corpus/missing.json",
        tokenizer="gpt2",
    ),
    prepare("prepare_sample_by_bogus", "config", GOOD_TXT, "data.source.sample_by=sentence"),
    prepare(
        "prepare_encoding_errors_bogus",
        "config",
        GOOD_TXT,
        "data.source.encoding_errors=ignore-all",
    ),
    prepare("prepare_val_fraction_negative", "config", GOOD_JSONL, "data.val_fraction=-0.5"),
    prepare("prepare_val_fraction_one", "config", GOOD_JSONL, "data.val_fraction=1.0"),
    prepare("prepare_limit_negative", "config", GOOD_JSONL, "data.source.limit=-1"),
    prepare("prepare_min_chars_negative", "config", GOOD_JSONL, "data.filters.min_chars=-1"),
    prepare("prepare_everything_filtered", "config", GOOD_JSONL, "data.filters.min_chars=1000000"),
    prepare(
        "prepare_lid_model_missing",
        "filesystem",
        GOOD_JSONL,
        "data.filters.language={model: corpus/missing.ftz, lang: en, threshold: 0.65}",
    ),
    prepare("prepare_data_dir_is_file", "filesystem", GOOD_JSONL, "data.data_dir=corpus/good.txt"),
    prepare("prepare_unknown_flag", "config", GOOD_JSONL, "--bogus"),
    prepare(
        "prepare_full_disk", "fault", GOOD_JSONL, "data.data_dir=full/prep", setup=full_disk("full")
    ),
    prepare(
        "prepare_read_only_dir", "fault", GOOD_JSONL, "data.data_dir=ro/prep", setup=read_only("ro")
    ),
    prepared("prepare_verify_flipped_byte", "malformed", "--verify", setup=flip_byte(SHARD)),
    prepared("prepare_verify_truncated_shard", "malformed", "--verify", setup=truncate(SHARD)),
    prepared("prepare_meta_wrong_shape", "malformed", setup=write(META, '{"splits": 5}')),
    prepared("prepare_meta_not_json", "malformed", setup=write(META, "not json {")),
    prepared("prepare_force_without_source", "config", "--force"),
]

TRAIN_CASES = [
    train("train_batch_size_zero", "config", "data.batch_size=0"),
    train("train_batch_size_float", "config", "data.batch_size=2.5"),
    train("train_lr_negative", "config", "optim.lr=-1"),
    train("train_lr_string", "config", "optim.lr=fast"),
    train("train_betas_out_of_range", "config", "optim.betas=[2.0,3.0]"),
    train("train_seed_negative", "config", "seed=-3"),
    train("train_accumulate_zero", "config", "trainer.accumulate_grad_batches=0"),
    train("train_val_fraction_negative", "config", "data.val_fraction=-0.5"),
    train("train_warmup_negative", "config", "optim.warmup_steps=-10"),
    train("train_weight_decay_negative", "config", "optim.weight_decay=-1"),
    train("train_grad_clip_negative", "config", "optim.grad_clip=-1"),
    train("train_min_lr_ratio_above_one", "config", "optim.min_lr_ratio=2"),
    train("train_heads_not_dividing", "config", "model.n_heads=3"),
    train("train_kv_heads_not_dividing", "config", "model.n_kv_heads=3"),
    train("train_d_model_zero", "config", "model.d_model=0"),
    train("train_context_length_zero", "config", "model.context_length=0"),
    train("train_dropout_above_one", "config", "model.dropout=1.5"),
    train("train_norm_bogus", "config", "model.norm=batchnorm"),
    train("train_vocab_smaller_than_data", "identity", "model.vocab_size=100"),
    train("train_context_longer_than_corpus", "config", "model.context_length=4096"),
    train("train_mistyped_key", "config", "optim.lrr=1e-3"),
    train("train_mistyped_key_plus", "config", "+optim.lrr=1e-3"),
    train("train_unknown_model", "config", "model=bogus"),
    train("train_unknown_optim", "config", "optim=bogus"),
    train("train_unknown_experiment", "config", "experiment=bogus"),
    train("train_precision_bogus", "config", "trainer.precision=bogus"),
    train("train_max_steps_abc", "config", "trainer.max_steps=abc"),
    train("train_max_steps_negative", "config", "trainer.max_steps=-5"),
    train("train_devices_zero", "config", "trainer.devices=0"),
    train("train_gpu_on_cpu", "config", "trainer=gpu"),
    train("train_val_every_zero", "config", "val_every_n_steps=0"),
    train("train_ckpt_every_zero", "config", "ckpt_every_n_steps=0"),
    train("train_nonfinite_bogus", "config", "nonfinite_loss=ignore"),
    train("train_num_workers_negative", "config", "data.num_workers=-1"),
    train("train_sdpa_backend_bogus", "config", "speed.sdpa_backend=bogus"),
    train("train_matmul_precision_bogus", "config", "speed.matmul_precision=bogus"),
    train_prepared("train_data_dir_missing", "filesystem", "data.data_dir=data/missing"),
    train_prepared("train_data_dir_not_corpus", "filesystem", "data.data_dir=notarun"),
    train_prepared(
        "train_meta_wrong_shape",
        "malformed",
        "data.data_dir=data/stories",
        setup=write(META, '{"splits": 5}'),
    ),
    train_prepared(
        "train_meta_list",
        "malformed",
        "data.data_dir=data/stories",
        setup=write(META, "[]"),
    ),
    train_prepared(
        "train_shard_truncated",
        "malformed",
        "data.data_dir=data/stories",
        setup=truncate(SHARD),
    ),
    train("train_ckpt_path_missing", "filesystem", "ckpt_path=runs/missing.ckpt"),
    train(
        "train_ckpt_path_random_file", "malformed", f"ckpt_path={LAST}", setup=random_bytes(LAST)
    ),
    train("train_ckpt_path_truncated", "malformed", f"ckpt_path={LAST}", setup=truncate(LAST)),
    train("train_ckpt_path_other_model", "identity", f"ckpt_path={LAST}", "model.d_model=64"),
    train("train_run_dir_full_disk", "fault", "hydra.run.dir=full/run", setup=full_disk("full")),
    train("train_run_dir_read_only", "fault", "hydra.run.dir=ro/run", setup=read_only("ro")),
    train("train_outputs_read_only", "fault", setup=read_only("outputs")),
]

RESUME_CASES = [
    Case("resume_not_a_run", "filesystem", ("train.py", "resume=data/stories", *QUIET)),
    Case("resume_missing_dir", "filesystem", ("train.py", "resume=runs/missing", *QUIET)),
    resume("resume_changed_lr", "identity", "optim.lr=0.5"),
    resume("resume_changed_model", "identity", "model.d_model=64"),
    resume("resume_changed_batch_size", "identity", "data.batch_size=4"),
    resume("resume_ckpt_path_missing", "filesystem", "ckpt_path=nope.ckpt"),
    resume(
        "resume_data_rebuilt_other_corpus",
        "identity",
        "data.data_dir=data/stories",  # the case's copy (the run config names the original)
        setup=rebuild_corpus(*DATA, "data.source.seed=7"),
    ),
    resume(
        "resume_all_ckpts_truncated",
        "malformed",
        setup=truncate_all("runs/base/checkpoints/*.ckpt"),
    ),
    resume(
        "resume_run_config_garbage", "malformed", setup=write(RUN_CONFIG, "::: [not yaml\n\t- {")
    ),
    resume("resume_run_config_list", "malformed", setup=write(RUN_CONFIG, "- a\n- b\n")),
    resume("resume_run_dir_read_only", "fault", setup=read_only("runs/base")),
]

EVALUATE = [
    evaluate("evaluate_max_tokens_negative", "config", "max_tokens=-5"),
    evaluate("evaluate_stride_zero", "config", "stride=0"),
    evaluate("evaluate_stride_above_context", "config", "stride=1000"),
    evaluate("evaluate_batch_size_zero", "config", "batch_size=0"),
    evaluate("evaluate_ckpt_unset", "config", ckpt=""),
    evaluate("evaluate_ckpt_missing", "filesystem", ckpt="runs/missing"),
    evaluate("evaluate_ckpt_not_a_run", "filesystem", ckpt="notarun"),
    evaluate("evaluate_ckpt_data_dir", "filesystem", ckpt="data/stories"),
    evaluate("evaluate_eval_set_bogus", "config", "eval_set=bogus"),
    evaluate("evaluate_device_cuda", "config", "device=cuda"),
    evaluate("evaluate_device_bogus", "config", "device=bogus"),
    evaluate("evaluate_ckpt_truncated", "malformed", ckpt=LAST, setup=truncate(LAST)),
    evaluate("evaluate_ckpt_random_file", "malformed", ckpt=LAST, setup=random_bytes(LAST)),
    evaluate("evaluate_tokenizer_corrupt", "malformed", setup=random_bytes(TOKENIZER)),
    evaluate("evaluate_tokenizer_spec_garbage", "malformed", setup=write(SPEC, "{nope")),
    evaluate("evaluate_tokenizer_dir_missing", "filesystem", "tokenizer_dir=nope"),
    evaluate("evaluate_run_config_garbage", "malformed", setup=write(RUN_CONFIG, "::: [not yaml")),
    # On the case's copy of the data (the run config names the original's absolute path).
    evaluate(
        "evaluate_meta_wrong_shape",
        "malformed",
        "eval_set.data_dir=data/stories",
        setup=write(META, '{"splits": 5}'),
    ),
    evaluate(
        "evaluate_val_shard_truncated",
        "malformed",
        "eval_set.data_dir=data/stories",
        setup=truncate("data/stories/val_000.bin"),
    ),
    evaluate(
        "evaluate_text_path_missing",
        "filesystem",
        "eval_set=text",
        "eval_set.source.path=corpus/missing.txt",
    ),
    evaluate(
        "evaluate_text_non_utf8",
        "malformed",
        "eval_set=text",
        "eval_set.source.path=corpus/latin1.txt",
        setup=write("corpus/latin1.txt", NON_UTF8),
    ),
    evaluate("evaluate_output_read_only", "fault", "output=ro/result.json", setup=read_only("ro")),
    evaluate(
        "evaluate_output_full_disk", "fault", "output=full/result.json", setup=full_disk("full")
    ),
]

GENERATE = [
    generate("generate_top_p_zero", "sampling", "top_p=0"),
    generate("generate_top_p_above_one", "sampling", "top_p=1.5"),
    generate("generate_top_k_negative", "sampling", "top_k=-3"),
    generate("generate_temperature_negative", "sampling", "temperature=-1"),
    generate("generate_temperature_string", "sampling", "temperature=hot"),
    generate("generate_max_new_tokens_negative", "sampling", "max_new_tokens=-1"),
    generate("generate_stop_wrong_type", "sampling", "stop=5"),
    generate("generate_batch_size_zero", "config", "batch_size=0"),
    generate("generate_device_cuda", "config", "device=cuda"),
    generate("generate_device_bogus", "config", "device=bogus"),
    generate("generate_prompt_empty", "config", "prompt=''"),
    generate("generate_prompt_stdin_empty", "config", "prompt=-", stdin=""),
    generate("generate_prompts_file_missing", "filesystem", "prompts_file=corpus/missing.txt"),
    generate(
        "generate_prompts_file_binary",
        "malformed",
        "prompts_file=corpus/prompts.bin",
        setup=random_bytes("corpus/prompts.bin"),
    ),
    generate("generate_ckpt_unset", "config", ckpt=""),
    generate("generate_ckpt_missing", "filesystem", ckpt="runs/missing"),
    generate("generate_ckpt_truncated", "malformed", ckpt=LAST, setup=truncate(LAST)),
    generate("generate_tokenizer_corrupt", "malformed", setup=random_bytes(TOKENIZER)),
    generate("generate_tokenizer_spec_list", "malformed", setup=write(SPEC, "[]")),
    generate("generate_tokenizer_missing", "filesystem", setup=remove(TOKENIZER)),
]

EXPORT = [
    export("export_format_bogus", "config", "format=bogus"),
    export("export_dtype_bogus", "config", "dtype=int8"),
    export("export_ckpt_missing", "filesystem", ckpt="runs/missing"),
    export("export_ckpt_not_a_run", "filesystem", ckpt="notarun"),
    export("export_ckpt_truncated", "malformed", ckpt=LAST, setup=truncate(LAST)),
    export("export_out_run_dir_force", "filesystem", "out=runs/base", "force=true"),
    export("export_out_data_dir", "filesystem", "out=data/stories"),
    export("export_out_data_dir_force", "filesystem", "out=data/stories", "force=true"),
    export("export_out_is_file", "filesystem", "out=corpus/good.txt", "force=true"),
    export("export_out_read_only", "fault", "out=ro/export", setup=read_only("ro")),
    export(
        "export_out_full_disk",
        "fault",
        "out=full/export",
        "format=safetensors",
        setup=full_disk("full"),
    ),
    export("export_tokenizer_dir_missing", "filesystem", "tokenizer_dir=nope"),
    export("export_tokenizer_corrupt", "malformed", setup=random_bytes(TOKENIZER)),
]

CHAT = [
    chat("chat_port_negative", "config", "port=-1"),
    chat("chat_port_too_big", "config", "port=70000"),
    chat("chat_port_string", "config", "port=abc"),
    chat("chat_port_in_use", "fault", setup=port_in_use),
    chat("chat_host_bogus", "config", "host=999.999.1.1"),
    Case(
        "chat_outputs_dir_missing",
        "filesystem",
        ("scripts/chat.py", "outputs_dir=nope"),
        timeout=CHAT_TIMEOUT,
    ),
    chat("chat_log_level_bogus", "config", "log_level=loud"),
    chat("chat_cpu_threads_zero", "config", "cpu_threads=0"),
    chat("chat_max_concurrent_zero", "config", "max_concurrent=0"),
    chat("chat_max_loaded_models_zero", "config", "max_loaded_models=0"),
    chat("chat_device_bogus", "config", "device=bogus"),
    chat("chat_sampling_top_p_bogus", "sampling", "sampling.top_p=2"),
    chat("chat_unknown_key", "config", "prot=8000"),
]

REPORT = [
    report("report_no_runs", "filesystem", "notarun"),
    report("report_missing_dir", "filesystem", "runs/missing"),
    report("report_no_args", "config"),
    report("report_x_bogus", "config", "--x", "bogus", "runs/base"),
    report("report_out_read_only", "fault", "runs/base", "--out", "ro", setup=read_only("ro")),
]

CONTROLS = [
    prepare("control_prepare", "control", GOOD_JSONL, control=True),
    train("control_train", "control", control=True),
    Case(
        "control_train_text_samples_null",  # README: callbacks.<name>=null switches it off
        "control",
        (*TRAIN[:-3], "callbacks.text_samples=null", *TRAIN[-2:]),
        control=True,
    ),
    resume("control_resume", "control", control=True),
    evaluate("control_evaluate", "control", control=True),
    generate("control_generate", "control", "max_new_tokens=4", control=True),
    export("control_export", "control", "format=safetensors", control=True),
    report("control_report", "control", "runs/base", control=True),
]

CASES: list[Case] = [
    *PREPARE,
    *TRAIN_CASES,
    *RESUME_CASES,
    *EVALUATE,
    *GENERATE,
    *EXPORT,
    *CHAT,
    *REPORT,
    *CONTROLS,
]
