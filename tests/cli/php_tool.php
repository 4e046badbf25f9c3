<?php
// Runs the PHP mama tool's own code (its sources, given as SRC) on a mama.xml for the CLI tests:
//   php php_tool.php SRC FILE stale MACHINE  prints "stale" or "running" (Machine::is_job_stale,
//                                            the tool's `ps -p job_pid` rule), "idle" for no job
//   php php_tool.php SRC FILE load           loads FILE with simplexml_load_file; prints "ok"
// Exit status 0 when it could answer, 1 otherwise (with the reason on stderr). Nothing is
// written to FILE.
if ($argc < 4) {
    fwrite(STDERR, "usage: php php_tool.php SRC FILE stale MACHINE | load\n");
    exit(2);
}
[$_, $src, $file, $what] = $argv;

if ($what === 'load') {
    libxml_use_internal_errors(true);
    $xml = simplexml_load_file($file);
    if ($xml === false) {
        foreach (libxml_get_errors() as $e) fwrite(STDERR, trim($e->message) . "\n");
        exit(1);
    }
    echo "ok\n";
    exit(0);
}

// The constants the tool's main script defines before loading its files.
define('MAMA_PATH', dirname($file));
define('MAMA_HOST', '127.0.0.1');
define('SETTINGS_FILE', $file);
define('DEBUG', false);
define('DEBUG_LOCK', false);
define('DEBUG_PID', false);
require_once("$src/ctldev.php");
new CtlDev("- None -", 0, "");
foreach (['options', 'machine', 'settings', 'util', 'job', 'log', 'os'] as $f)
    require_once("$src/$f.php");

if ($what === 'stale' && $argc == 5) {
    $m = Machine::get_by_name($argv[4]);
    if ($m === false) {
        fwrite(STDERR, "machine {$argv[4]} not found\n");
        exit(1);
    }
    if ($m->job == "") echo "idle\n";
    else echo $m->is_job_stale() ? "stale\n" : "running\n";
    exit(0);
}
fwrite(STDERR, "unknown request $what\n");
exit(2);
