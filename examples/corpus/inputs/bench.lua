-- A mixed Lua workload for proctor's meter corpus: the interpreter (Lua
-- 5.4 from Debian's source package) is the program measured; this script
-- is its input. Allocation and collection, recursion, array loops, float
-- arithmetic through calls, closures, string patterns and table sorting.

local function bottom_up(depth)
  if depth == 0 then return {} end
  depth = depth - 1
  return { bottom_up(depth), bottom_up(depth) }
end

local function check(tree)
  if tree[1] then return 1 + check(tree[1]) + check(tree[2]) end
  return 1
end

local trees = 0
for d = 4, 10, 2 do
  local iterations = 1 << (10 - d + 4)
  for _ = 1, iterations do trees = trees + check(bottom_up(d)) end
end
print("binary trees", trees)

local function fannkuch(n)
  local perm, perm1, count = {}, {}, {}
  local maxflips, checksum, r, nperm = 0, 0, n, 0
  for i = 0, n - 1 do perm1[i] = i end
  while true do
    while r ~= 1 do count[r - 1] = r; r = r - 1 end
    for i = 0, n - 1 do perm[i] = perm1[i] end
    local flips, k = 0, perm[0]
    while k ~= 0 do
      local i, j = 0, k
      while i < j do perm[i], perm[j] = perm[j], perm[i]; i = i + 1; j = j - 1 end
      flips = flips + 1
      k = perm[0]
    end
    if flips > maxflips then maxflips = flips end
    checksum = checksum + (nperm % 2 == 0 and flips or -flips)
    while true do
      if r == n then return checksum, maxflips end
      local p0 = perm1[0]
      for i = 0, r - 1 do perm1[i] = perm1[i + 1] end
      perm1[r] = p0
      count[r] = count[r] - 1
      if count[r] > 0 then break end
      r = r + 1
    end
    nperm = nperm + 1
  end
end
print("fannkuch", fannkuch(8))

local function a(i, j)
  local ij = i + j - 1
  return 1.0 / (ij * (ij - 1) * 0.5 + i)
end
local function av(x, y, n)
  for i = 1, n do
    local s = 0
    for j = 1, n do s = s + a(i, j) * x[j] end
    y[i] = s
  end
end
local function atv(x, y, n)
  for i = 1, n do
    local s = 0
    for j = 1, n do s = s + a(j, i) * x[j] end
    y[i] = s
  end
end
local n, u, v, t = 60, {}, {}, {}
for i = 1, n do u[i] = 1 end
for _ = 1, 10 do
  av(u, t, n); atv(t, v, n); av(v, t, n); atv(t, u, n)
end
local vbv, vv = 0, 0
for i = 1, n do vbv = vbv + u[i] * v[i]; vv = vv + v[i] * v[i] end
print("spectral norm", string.format("%0.9f", math.sqrt(vbv / vv)))

local words = {}
local seed = 42
local function rand(m) seed = (seed * 1103515245 + 12345) % 2147483648; return seed % m end
local syll = { "ka", "lo", "mi", "ne", "su", "ta", "ri", "po", "de", "an" }
local parts = {}
for i = 1, 10000 do
  local w = {}
  for _ = 1, 1 + rand(3) do w[#w + 1] = syll[1 + rand(#syll)] end
  parts[i] = table.concat(w)
end
local text = table.concat(parts, " ")
for w in text:gmatch("%a+") do words[w] = (words[w] or 0) + 1 end
local list = {}
for w, c in pairs(words) do list[#list + 1] = { w = w, c = c } end
table.sort(list, function(x, y) if x.c ~= y.c then return x.c > y.c end return x.w < y.w end)
local top = {}
for i = 1, 5 do top[i] = list[i].w .. "=" .. list[i].c end
print("words", #list, table.concat(top, " "))
print("gsub", #(text:gsub("(%a)(%a)", "%2%1")), select(2, text:gsub("ka", "")))
