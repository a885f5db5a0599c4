-- greedy.lua: rank steps by the largest error reduction per byte first, until the budget is
-- spent. A layer's error is measured relative to its output energy (gain / signal: the share of
-- the layer's activation-weighted output that the step gives back), since absolute errors of
-- different layers are in different units for the model's loss: on SmolLM2-135M W3 at 10%, greedy
-- on absolute errors removed more of them (88.8% vs 83.7%) yet gave a worse perplexity than
-- uniform (52.1 vs 46.0); on relative errors it is better than uniform. Where the compressor measured
-- each layer's end-to-end loss (--sens-tokens), that converts error into loss instead.
-- The objective is a sum over layers, and along a layer the gains do not increase (singular values
-- decrease), so the steps taken up to the first one that does not fit are a prefix in ratio order:
-- the best set for the bytes they use (they solve the fractional knapsack, and are whole). The
-- total is short of the optimum by less than the gain of that first step; the bytes left are then
-- filled with the best steps that still fit.

-- What one unit of a layer's error (its gain units) is worth. Measured (compress --sens-tokens): the
-- model's loss with only this layer quantized over the layer's error with no branch -- the exchange
-- rate from this layer's error to the model's loss. Otherwise the layer's output energy stands in:
-- the relative error.
local function worth(l)
  if l.loss and l.energy > 0 then return math.max(l.loss, 0) / l.energy end
  return 1 / (l.signal > 0 and l.signal or 1)
end

function allocate(budget, layers)
  local ranks, worths = {}, {}
  for i, l in ipairs(layers) do
    ranks[i] = 0
    worths[i] = worth(l)
  end
  -- fill_steps (given by the host, see sdk/POLICIES.md) takes the steps in order of this value
  fill_steps(layers, ranks, budget.bytes, function(i, taken)
    local l = layers[i]
    local g = l.gain[taken + 1]
    if not (g > 0) then return nil end  -- no gain left along this layer
    return g * worths[i] / l.bytes_per_rank
  end)
  return ranks
end
