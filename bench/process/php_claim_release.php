<?php
// One claim and release of a machine by the PHP mama tool's own code (its Settings lock/load/save
// and Machine::get_by_name/load/save, as its `run` does around a job), for bench/process_bench.py.
// The tool's constants are defined here instead of by its main.php, so nothing touches the
// network; the job itself is not run (mama's side runs `true`).
//   php php_claim_release.php PHP_MAMA_SRC STATE_FILE MACHINE
if ($argc != 4) {
    fwrite(STDERR, "usage: php php_claim_release.php SRC STATE MACHINE\n");
    exit(2);
}
[$_, $src, $state, $name] = $argv;
ini_set('display_errors', 'stderr');
error_reporting(E_ALL & ~E_DEPRECATED);
define('MAMA_PATH', dirname($state));
define('MAMA_HOST', '127.0.0.1');
require_once("$src/ctldev.php");
new CtlDev('- None -', 0, '');
define('SETTINGS_FILE', $state);
foreach (['options', 'machine', 'settings', 'util', 'job', 'log', 'os'] as $f)
    require_once("$src/$f.php");
if (!defined('DEBUG_LOCK')) define('DEBUG_LOCK', FALSE);

LOCK();  // claim: under the file's lock, find the machine, write job and job_pid, save
$mach = Machine::get_by_name($name);
if ($mach === FALSE) {
    fwrite(STDERR, "php_claim_release: no machine $name in $state\n");
    exit(5);
}
$prev_job = $mach->job;
$prev_pid = $mach->job_pid;
$mach->job = "run bench x86_64/fedora";
$mach->job_pid = getmypid();
$mach->save();
UNLOCK();

LOCK();  // release: load it again, put the previous job fields back, save
$mach->load();
$mach->job = $prev_job;
$mach->job_pid = $prev_pid;
$mach->save();
UNLOCK();
exit(0);
