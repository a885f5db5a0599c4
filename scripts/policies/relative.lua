-- relative.lua: every layer first gets a floor rank (half the uniform rank), then the rest of
-- the budget goes step by step to the largest *relative* error reduction per byte: each step's
-- gain divided by its layer's error with no branch. Absolute errors of different layers are in
-- different units for the model's loss (a few layers with large activations would take most of
-- the budget); the share of a layer's own error removed is scale-free, and the floor keeps every
-- layer compensated.

local FLOOR = 0.5   -- the floor as a fraction of the uniform rank

local function before(a, b)
  if a.ratio ~= b.ratio then return a.ratio > b.ratio end
  return a.layer < b.layer
end

local function push(heap, item)
  local n = #heap + 1
  heap[n] = item
  while n > 1 do
    local parent = n // 2
    if not before(heap[n], heap[parent]) then break end
    heap[n], heap[parent] = heap[parent], heap[n]
    n = parent
  end
end

local function pop(heap)
  local top, n = heap[1], #heap
  heap[1] = heap[n]
  heap[n] = nil
  n = n - 1
  local i = 1
  while true do
    local l, r, best = 2 * i, 2 * i + 1, i
    if l <= n and before(heap[l], heap[best]) then best = l end
    if r <= n and before(heap[r], heap[best]) then best = r end
    if best == i then break end
    heap[i], heap[best] = heap[best], heap[i]
    i = best
  end
  return top
end

local function next_step(layers, i, taken)
  local l = layers[i]
  if taken >= l.rank_max or not (l.energy > 0) then return nil end
  local g = l.gain[taken + 1]
  if not (g > 0) then return nil end
  return { ratio = g / l.energy / l.bytes_per_rank, layer = i }
end

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
  local heap = {}
  for i = 1, #layers do
    local step = next_step(layers, i, ranks[i])
    if step then push(heap, step) end
  end
  while #heap > 0 do
    local i = pop(heap).layer
    local cost = layers[i].bytes_per_rank
    if cost <= left then
      left = left - cost
      ranks[i] = ranks[i] + 1
      local step = next_step(layers, i, ranks[i])
      if step then push(heap, step) end
    end
  end
  return ranks
end
