-- relative.lua: every layer first gets a floor rank (half the uniform rank), then the rest of
-- the budget goes step by step to the largest *relative* error reduction per byte: each step's
-- gain divided by its layer's error with no branch. Absolute errors of different layers are in
-- different units for the model's loss (a few layers with large activations would take most of
-- the budget); the share of a layer's own error removed is scale-free, and the floor keeps every
-- layer compensated.

local FLOOR = 0.5   -- the floor as a fraction of the uniform rank

function allocate(budget, layers)
  local per_rank = 0
  for _, l in ipairs(layers) do per_rank = per_rank + l.bytes_per_rank end
  local uniform = per_rank > 0 and budget.bytes // per_rank or 0
  local floor = math.floor(FLOOR * uniform)
  local ranks, left = {}, budget.bytes
  for i, l in ipairs(layers) do
    ranks[i] = math.min(floor, l.rank_max)
    left = left - ranks[i] * l.bytes_per_rank
  end
  -- the rest step by step (fill_steps: given by the host, see sdk/POLICIES.md)
  fill_steps(layers, ranks, left, function(i, taken)
    local l = layers[i]
    local g = l.gain[taken + 1]
    if not (l.energy > 0 and g > 0) then return nil end
    return g / l.energy / l.bytes_per_rank
  end)
  return ranks
end
