"""The reference side of `npm run bench:recipe`: Hugging Face Trainer + PEFT LoRA on the same pre-tokenized DDI rows and
the same random checkpoint that medlora trains (bench/recipe.ts writes both), in the same settings as the medlora run.
Style of ../shared/bench/hf_peft_bench.py; prints one JSON line. `--device cuda` (bench:recipe --device cuda): the
base loaded in bf16 on the GPU, Trainer bf16=True (autocast; PEFT keeps the LoRA weights f32), the loop timed to a
device synchronize, and the peak of torch's CUDA allocator (max_memory_allocated / max_memory_reserved) reported.
usage: python hf_recipe.py --model DIR --data rows.jsonl --updates 12 --batch 2 --accum 4 --pad longest|max_length
       python hf_recipe.py ... --device cuda
       python hf_recipe.py --extract --model DIR --prompts prompts.jsonl --max-new-tokens 32 --batch 8"""
import argparse, json, os, time

ap = argparse.ArgumentParser()
ap.add_argument("--model", required=True)
ap.add_argument("--data")
ap.add_argument("--updates", type=int, default=12)
ap.add_argument("--batch", type=int, default=2)
ap.add_argument("--accum", type=int, default=4)
ap.add_argument("--pad", default="longest", choices=["longest", "max_length"])
ap.add_argument("--max-length", type=int, default=400)
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--ckpt", type=int, default=0)
ap.add_argument("--lr", type=float, default=2.5e-5)
ap.add_argument("--warmup", type=int, default=5)
ap.add_argument("--pad-id", type=int, default=0)
ap.add_argument("--out", default="/tmp/medlora-recipe-hf-out")
ap.add_argument("--device", default="cpu")  # cpu, cuda or cuda:N
ap.add_argument("--bf16", action="store_true")  # on the CPU: the base in bf16, bf16=True (always so on a GPU)
# extraction mode: greedy generate over prompts
ap.add_argument("--extract", action="store_true")
ap.add_argument("--prompts")
ap.add_argument("--max-new-tokens", type=int, default=32)
ap.add_argument("--eos-id", type=int, default=None)
a = ap.parse_args()

import torch
from transformers import AutoModelForCausalLM, Trainer, TrainingArguments
from peft import LoraConfig, get_peft_model

cuda = a.device.startswith("cuda")
if cuda:
    # bench:recipe passes cuda and picks the GPU through CUDA_VISIBLE_DEVICES: Trainer takes cuda:0 and would wrap the
    # model in DataParallel when it sees several GPUs
    if not torch.cuda.is_available():
        raise SystemExit(f"hf_recipe.py --device {a.device}: this python's torch {torch.__version__} sees no CUDA device")
    if torch.device(a.device).index is not None:
        torch.cuda.set_device(torch.device(a.device).index)
torch.set_num_threads(a.threads)
torch.manual_seed(0)
t_load = time.time()
bf16 = cuda or a.bf16
model = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.bfloat16 if bf16 else torch.float32,
                                             attn_implementation="sdpa")
load_s = time.time() - t_load


def sync():
    # CUDA runs asynchronously: a time taken without a synchronize measures the launches, not the work
    if cuda:
        torch.cuda.synchronize()


def device_memory():
    if not cuda:
        return {}
    return dict(peak_device_allocated_gb=round(torch.cuda.max_memory_allocated() / 1e9, 3),
                peak_device_reserved_gb=round(torch.cuda.max_memory_reserved() / 1e9, 3),
                device_name=torch.cuda.get_device_name())


def peak_rss_gb():
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # KiB -> GB


if a.extract:
    # batched greedy generation with the KV cache (left padding, as HF recommends for decoder-only batches)
    prompts = [json.loads(l)["input_ids"] for l in open(a.prompts) if l.strip()]
    if cuda:
        raise SystemExit("hf_recipe.py --extract: CPU only (bench:recipe refuses --extract with --device cuda)")
    model.eval()
    t = time.time()
    generated = 0
    with torch.no_grad():
        for i in range(0, len(prompts), a.batch):
            rows = prompts[i : i + a.batch]
            T = max(len(r) for r in rows)
            ids = torch.tensor([[a.pad_id] * (T - len(r)) + r for r in rows])
            mask = torch.tensor([[0] * (T - len(r)) + [1] * len(r) for r in rows])
            out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=a.max_new_tokens, do_sample=False,
                                 pad_token_id=a.pad_id, eos_token_id=a.eos_id)
            new = out[:, T:]
            for row in new.tolist():
                n = len(row)
                if a.eos_id is not None and a.eos_id in row:
                    n = row.index(a.eos_id) + 1
                generated += n
    dt = time.time() - t
    print(json.dumps(dict(engine="hf-generate torch " + torch.__version__, records=len(prompts), wall_s=round(dt, 3),
                          records_per_s=round(len(prompts) / dt, 3), generated_tokens=generated,
                          gen_tok_per_s=round(generated / dt, 2), load_s=round(load_s, 2), peak_rss_gb=round(peak_rss_gb(), 2))))
    raise SystemExit(0)

rows = [json.loads(l) for l in open(a.data) if l.strip()]
model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.05, task_type="CAUSAL_LM",
    target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "lm_head"]))

stats = dict(real=0, computed=0)


def collate(batch):
    T = a.max_length if a.pad == "max_length" else max(len(r["input_ids"]) for r in batch)
    ids, labels, mask = [], [], []
    for r in batch:
        n = T - len(r["input_ids"])
        ids.append(r["input_ids"] + [a.pad_id] * n)
        labels.append(r["labels"] + [-100] * n)
        mask.append([1] * len(r["input_ids"]) + [0] * n)
        stats["real"] += len(r["input_ids"])
    stats["computed"] += T * len(batch)
    return dict(input_ids=torch.tensor(ids), labels=torch.tensor(labels), attention_mask=torch.tensor(mask))


class SequentialTrainer(Trainer):
    # the rows in file order, as medlora reads them with training.shuffle false: both see the same micro-batches
    def _get_train_sampler(self, *args, **kwargs):
        return torch.utils.data.SequentialSampler(self.train_dataset)


args = TrainingArguments(output_dir=a.out, per_device_train_batch_size=a.batch, gradient_accumulation_steps=a.accum,
    max_steps=a.updates, learning_rate=a.lr, lr_scheduler_type="linear", warmup_steps=a.warmup, weight_decay=0.0,
    max_grad_norm=1.0, optim="adamw_torch", logging_steps=1000, save_strategy="no", report_to=[],
    **(dict(bf16=True) if bf16 else {}), **({} if cuda else dict(use_cpu=True)),
    dataloader_num_workers=0, remove_unused_columns=False, seed=0, disable_tqdm=True,
    gradient_checkpointing=bool(a.ckpt), gradient_checkpointing_kwargs={"use_reentrant": False} if a.ckpt else None)
tr = SequentialTrainer(model=model, args=args, train_dataset=rows, data_collator=collate)
if cuda:
    torch.cuda.reset_peak_memory_stats()
sync()
t = time.time()
c = time.process_time()  # user + sys CPU of this process (all threads) over the loop, as bench/recipe.ts reports
res = tr.train()
sync()
wall = time.time() - t
cpu = time.process_time() - c
print(json.dumps(dict(engine="hf-peft torch " + torch.__version__, pad=a.pad, updates=a.updates, wall_s=round(wall, 3), cpu_s=round(cpu, 3),
                      train_runtime=res.metrics.get("train_runtime"), real_tokens=stats["real"], computed_tokens=stats["computed"],
                      loss=res.training_loss, load_s=round(load_s, 2), peak_rss_gb=round(peak_rss_gb(), 2),
                      device=a.device, **device_memory())))
