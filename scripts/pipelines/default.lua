-- default.lua: the Llama decoder layer as hcinfer runs it without a script. Every linear stage
-- gets its compensation branch, driven by the async scheduler (overlapped on the host threads).
-- Buffers: x (residual stream), xn, q, k, v, att, proj, gate, up, hidden, logits.

sched = "async"

layer = {
  { op = "norm",      name = "attn_norm",     input = "x",      output = "xn" },
  { op = "linear",    name = "attn_q",        input = "xn",     output = "q" },
  { op = "linear",    name = "attn_k",        input = "xn",     output = "k" },
  { op = "linear",    name = "attn_v",        input = "xn",     output = "v" },
  { op = "rope",      name = "rope",          input = "q",      input2 = "k" },
  { op = "kv_store",  name = "kv_store",      input = "k",      input2 = "v" },
  { op = "attention", name = "attention",     input = "q",      output = "att" },
  { op = "linear",    name = "attn_output",   input = "att",    output = "proj" },
  { op = "add",       name = "attn_residual", input = "proj",   output = "x" },
  { op = "norm",      name = "ffn_norm",      input = "x",      output = "xn" },
  { op = "linear",    name = "ffn_gate",      input = "xn",     output = "gate" },
  { op = "linear",    name = "ffn_up",        input = "xn",     output = "up" },
  { op = "swiglu",    name = "ffn_act",       input = "gate",   input2 = "up",   output = "hidden" },
  { op = "linear",    name = "ffn_down",      input = "hidden", output = "proj" },
  { op = "add",       name = "ffn_residual",  input = "proj",   output = "x" },
}

head = {
  { op = "norm",   name = "output_norm", input = "x",  output = "xn" },
  { op = "linear", name = "output",      input = "xn", output = "logits" },
}
