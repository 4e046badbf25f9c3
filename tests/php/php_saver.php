<?php
// Saves one machine of mama.xml the way the PHP mama tool does (SPEC §2), in a loop:
// fopen r+, flock(LOCK_EX), read through the locked handle, refuse a file without
// </settings>, parse with simplexml, remove the machine and append a rebuilt one with the
// fields the tool knows in its fixed order, reformat (two spaces, the XML 1.0 declaration),
// truncate, rewind, write, unlock. Each iteration increments <start_timeout> and writes its own
// job and job_pid, so a lost update shows in the final file.
//   php php_saver.php FILE MACHINE ITERATIONS
if ($argc != 4) {
    fwrite(STDERR, "usage: php php_saver.php FILE MACHINE ITERATIONS\n");
    exit(2);
}
[$_, $file, $name, $iterations] = $argv;
$order = ['name', 'mac', 'ip', 'is_started', 'only_vm', 'arch', 'os', 'kernel', 'pwr_dev',
          'pwr_slot', 'rly_dev', 'rly_slot', 'reservation', 'resources', 'boot_params',
          'vm_params', 'job', 'job_pid', 'startcmd', 'stopcmd', 'start_timeout'];

function fail($code, $message) {
    fwrite(STDERR, "php_saver: $message\n");
    exit($code);
}

for ($i = 0; $i < (int)$iterations; $i++) {
    $fp = fopen($file, 'r+');
    if ($fp === false) fail(3, "cannot open $file");
    if (!flock($fp, LOCK_EX)) fail(3, "cannot lock $file");
    $data = stream_get_contents($fp);
    if ($data === false || strpos($data, '</settings>') === false)
        fail(4, "iteration $i: $file has no </settings> (truncated file seen)");
    $xml = simplexml_load_string($data);
    if ($xml === false) fail(5, "iteration $i: $file does not parse");
    $found = null;
    foreach ($xml->machine as $m) {
        if ((string)$m->name === $name) $found = $m;
    }
    if ($found === null) fail(6, "iteration $i: machine $name not found");
    $fields = [];
    foreach ($order as $f) $fields[$f] = (string)$found->$f;
    $fields['start_timeout'] = (string)((int)$fields['start_timeout'] + 1);
    $fields['job'] = "php iteration $i";
    $fields['job_pid'] = (string)getmypid();
    $dom_machine = dom_import_simplexml($found);
    $dom_machine->parentNode->removeChild($dom_machine);
    $new = $xml->addChild('machine');
    foreach ($order as $f) {
        if ($fields[$f] === '') $new->addChild($f);
        else $new->addChild($f, htmlspecialchars($fields[$f], ENT_XML1));
    }
    $dom = new DOMDocument('1.0');
    $dom->preserveWhiteSpace = false;
    $dom->formatOutput = true;
    $dom->loadXML($xml->asXML());
    $out = $dom->saveXML();
    ftruncate($fp, 0);
    rewind($fp);
    if (fwrite($fp, $out) !== strlen($out)) fail(7, "iteration $i: short write");
    fflush($fp);
    flock($fp, LOCK_UN);
    fclose($fp);
}
exit(0);
