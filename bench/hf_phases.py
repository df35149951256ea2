"""Phase times (forward+loss, backward, optimizer) and the top ops of the reference HF + PEFT LoRA step, set up exactly
as ../shared/bench/hf_peft_bench.py (same shapes, LoRA config, f32 adapters, AdamW), to compare with medlora's
`node dist/bench/train.js --profile`. usage: python bench/hf_phases.py [--config smollm2-135m] [--batch 2] [--seq 400]
[--ckpt 0] [--steps 2] [--threads 2] [--ops 25]"""
import argparse, json, time, torch
from transformers import LlamaConfig, LlamaForCausalLM
from peft import LoraConfig, get_peft_model
from torch.profiler import profile, ProfilerActivity

# the reference's SHAPES (../shared/bench/hf_peft_bench.py)
SHAPES = {
  "smollm2-135m": dict(vocab_size=49152, hidden_size=576, num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3, intermediate_size=1536, rope_theta=100000.0, tie_word_embeddings=False),
  "llama-3.2-1b": dict(vocab_size=128256, hidden_size=2048, num_hidden_layers=16, num_attention_heads=32, num_key_value_heads=8, intermediate_size=8192, rope_theta=500000.0, tie_word_embeddings=False),
}
ap = argparse.ArgumentParser()
ap.add_argument("--config", default="smollm2-135m"); ap.add_argument("--batch", type=int, default=2); ap.add_argument("--seq", type=int, default=400)
ap.add_argument("--dtype", default="bf16"); ap.add_argument("--ckpt", type=int, default=0); ap.add_argument("--steps", type=int, default=2)
ap.add_argument("--threads", type=int, default=2); ap.add_argument("--ops", type=int, default=25)
a = ap.parse_args()
torch.set_num_threads(a.threads); torch.manual_seed(0)
dt = dict(bf16=torch.bfloat16, fp32=torch.float32)[a.dtype]
m = LlamaForCausalLM(LlamaConfig(**SHAPES[a.config], attn_implementation="sdpa")).to(dt)
if a.ckpt: m.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False}); m.enable_input_require_grads()
m = get_peft_model(m, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.05, task_type="CAUSAL_LM",
    target_modules=["q_proj","k_proj","v_proj","o_proj","gate_proj","up_proj","down_proj","lm_head"]))
for n, p in m.named_parameters():
    if p.requires_grad: p.data = p.data.float()
m.train()
opt = torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=2.5e-5)
ids = torch.randint(0, SHAPES[a.config]["vocab_size"], (a.batch, a.seq)); labels = ids.clone(); labels[:, : a.seq // 2] = -100

def step():
    t0 = time.time(); c0 = time.process_time()
    out = m(input_ids=ids, labels=labels); t1 = time.time()
    out.loss.backward(); t2 = time.time()
    opt.step(); opt.zero_grad(set_to_none=True); t3 = time.time()
    return dict(step_s=t3 - t0, forward_s=t1 - t0, backward_s=t2 - t1, optim_s=t3 - t2, cpu_s=time.process_time() - c0)

rows = [step() for _ in range(a.steps + 1)]
best = min(rows[1:], key=lambda r: r["step_s"])
with profile(activities=[ProfilerActivity.CPU]) as prof:
    step()
table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=a.ops)
print(table)
print(json.dumps(dict(engine="hf-peft torch " + torch.__version__, config=a.config, batch=a.batch, seq=a.seq, ckpt=a.ckpt,
    steps_s=[round(r["step_s"], 3) for r in rows], **{k: round(v, 3) for k, v in best.items()},
    tok_per_s=round(a.batch * a.seq / best["step_s"], 1))))
