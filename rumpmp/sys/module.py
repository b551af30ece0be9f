"""module(9), modctl(2) and rump's components: numbers and the shared layout."""

MODULE_CLASS_ANY, MODULE_CLASS_MISC, MODULE_CLASS_VFS, MODULE_CLASS_DRIVER = 0, 1, 2, 3
MODULE_CLASS_EXEC, MODULE_CLASS_SECMODEL, MODULE_CLASS_BUFQ = 4, 5, 6
MODULE_CMD_INIT, MODULE_CMD_FINI, MODULE_CMD_STAT, MODULE_CMD_AUTOUNLOAD = 0, 1, 2, 3
MODCTL_LOAD, MODCTL_UNLOAD, MODCTL_STAT = 0, 1, 2

# enum rump_component_type, in NetBSD's order
(
    RUMP_COMPONENT_DEV,
    RUMP_COMPONENT_DEV_AFTERMAINBUS,
    RUMP_COMPONENT_NET,
    RUMP_COMPONENT_NET_ROUTE,
    RUMP_COMPONENT_NET_IF,
    RUMP_COMPONENT_NET_IFCFG,
    RUMP_COMPONENT_VFS,
    RUMP_COMPONENT_KERN,
    RUMP_COMPONENT_KERN_VFS,
    RUMP_COMPONENT_POSTINIT,
    RUMP_COMPONENT_SYSCALL,
    RUMP_COMPONENT_MAX,
) = range(12)

# The "module" region: a header with the lock and each component type's count,
# then a record per loaded module.
M_LOCK = 0
M_COMPONENTS = 1  # RUMP_COMPONENT_MAX words
M_WORDS = 16
NMODULES = 64
MR_USED = 0
MR_REFS = 1  # loaded modules that require this one
MR_CLASS = 2
MR_BLOB = 3  # 3 words: the pickled modinfo (0 size: found through an entry point)
MR_NAME = 6  # 32 bytes
MR_WORDS = 10
MODNAME_LEN = 32

REGION = ("module", (M_WORDS + NMODULES * MR_WORDS) * 8)
