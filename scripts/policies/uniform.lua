-- uniform.lua: the same rank for every layer, the largest the budget allows, capped at each
-- layer's rank_max: what `hcinfer compress` does without --policy, written as a policy.

function allocate(budget, layers)
  local per_rank = 0
  for _, l in ipairs(layers) do per_rank = per_rank + l.bytes_per_rank end
  local r = per_rank > 0 and budget.bytes // per_rank or 0
  local ranks = {}
  for i, l in ipairs(layers) do ranks[i] = math.min(r, l.rank_max) end
  return ranks
end
