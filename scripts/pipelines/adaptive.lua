-- adaptive.lua: the default layer, plus a policy that watches the measured times every 8 steps:
-- a branch whose host time exceeds its overlap window is shrunk (or, at rank 1, run inline on
-- the device instead); when there is slack, the rank grows back. The head's branch always runs
-- inline: the vocabulary-wide output leaves the host no window to hide it in.

sched = "async"
on_step_every = 8

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
  { op = "linear", name = "output",      input = "xn", output = "logits", sched = "inline" },
}

-- stats.stages: one entry per linear stage with a branch: name, kind, layer, device_ms, host_ms,
-- wait_ms, window_ms (device time the host job overlaps with), rank, rank_max, branch, sched.
-- Return nil for no change, or { [stage name] = { rank = , branch = , sched = }, host_budget = }.
function on_step(stats)
  local answer = {}
  for _, s in ipairs(stats.stages) do
    if s.kind ~= "output" and s.branch and s.window_ms > 0 then
      if s.wait_ms > 0.1 * s.window_ms and s.rank > 1 then
        answer[s.name] = { rank = math.max(1, s.rank * 3 // 4) }
      elseif s.wait_ms > 0.1 * s.window_ms then
        answer[s.name] = { sched = "inline" }
      elseif s.host_ms < 0.5 * s.window_ms and s.rank < s.rank_max then
        answer[s.name] = { rank = math.min(s.rank_max, s.rank + 1) }
      end
    end
  end
  return answer
end
