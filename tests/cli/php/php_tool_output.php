<?php
// Runs the PHP mama tool's own `list` or `info` (its src/main.php cmd_list, src/machine.php
// print_info) on a state file, without the network: the tool's constants are defined here, and
// the test puts stand-ins for ping, nc and ip first on PATH.
//   php php_tool_output.php PHP_MAMA_SRC STATE_FILE list
//   php php_tool_output.php PHP_MAMA_SRC STATE_FILE info MACHINE
if ($argc < 4) {
    fwrite(STDERR, "usage: php php_tool_output.php SRC STATE list|info [MACHINE]\n");
    exit(2);
}
[$_, $src, $state] = $argv;
$command = array_slice($argv, 3);
// Notices (PHP 8 warns about the tool's bool-returning sort callback) go to stderr, never
// into the output that is compared.
ini_set('display_errors', 'stderr');
error_reporting(E_ALL & ~E_DEPRECATED);
define('MAMA_PATH', dirname($state));
define('MAMA_HOST', '127.0.0.1');
require_once("$src/ctldev.php");
new CtlDev('- None -', 0, '');
define('SETTINGS_FILE', $state);
foreach (['options', 'machine', 'settings', 'util', 'job', 'log', 'os'] as $f)
    require_once("$src/$f.php");
// main.php parses $argv and runs the command at once.
$argv = array_merge(['mama'], $command);
$argc = count($argv);
require_once("$src/main.php");
