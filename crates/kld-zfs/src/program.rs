//! Channel programs (Lua run by `zfs program` in one transaction group).

/// Rolls a tree back to a recursive snapshot, all or nothing.
///
/// Arguments: the tree's root dataset, the snapshot's short name, and
/// `destroy-newer` or `keep-newer`. Every check runs before any change, so
/// an error leaves the pool as it was.
pub const ROLLBACK_TREE: &str = r#"
local argv = (...)["argv"]
local root, short, mode = argv[1], argv[2], argv[3]

local datasets = {}
local function walk(ds)
    table.insert(datasets, ds)
    for child in zfs.list.children(ds) do
        walk(child)
    end
end
walk(root)

local work = {}
for _, ds in ipairs(datasets) do
    local target = ds .. "@" .. short
    if not zfs.exists(target) then
        error(target .. " does not exist: roll back to a snapshot the whole tree has (zfs snapshot -r / ksnap -r)")
    end
    local txg = zfs.get_prop(target, "createtxg")
    local newer = {}
    for snap in zfs.list.snapshots(ds) do
        if zfs.get_prop(snap, "createtxg") > txg then
            table.insert(newer, snap)
        end
    end
    if #newer > 0 and mode ~= "destroy-newer" then
        error("snapshots newer than " .. target .. " exist: " .. table.concat(newer, " "))
    end
    for i = #newer, 1, -1 do
        local err = zfs.check.destroy(newer[i])
        if err ~= 0 then
            error("cannot destroy " .. newer[i] .. " (error " .. err .. "; it has clones or holds)")
        end
    end
    local err = zfs.check.rollback(ds)
    if err ~= 0 then
        error("cannot roll back " .. ds .. " (error " .. err .. ")")
    end
    table.insert(work, { ds = ds, newer = newer })
end

for _, w in ipairs(work) do
    for i = #w.newer, 1, -1 do
        local err = zfs.sync.destroy(w.newer[i])
        if err ~= 0 then
            error("destroying " .. w.newer[i] .. " failed (error " .. err .. ")")
        end
    end
    local err = zfs.sync.rollback(w.ds)
    if err ~= 0 then
        error("rolling back " .. w.ds .. " failed (error " .. err .. ")")
    end
end
return #work
"#;
