// bambupi case: a parametric box for a Raspberry Pi, a 0.96"/1.3" I2C OLED, three 5 mm LEDs, a buzzer and a
// 12 mm push button. Print front-face down, no supports needed except for the cable exit.
// Render: openscad -o case.stl bambupi-case.scad      (-D 'board="zero"' for a Pi Zero 2 W)
// Parts for checks: -D 'part="oled_window"', "led_hole" or "sensor_window" renders just that cut-out.

board = "pi4";          // "pi4" (Pi 3/4: 85 x 56 mm) or "zero" (Pi Zero 2 W: 65 x 30 mm)
part = "case";          // case | oled_window | led_hole | sensor_window (| sensor_window_in_case, for tests)
wall = 2.0;             // mm
clearance = 1.0;        // around the board
height = 32;            // inside height (Pi 4 with headers and a cable)

// OLED module (documented in hardware/README.md): 0.96" SSD1306, active area 21.7 x 10.9 mm.
oled_window = [24, 12];     // visible window, a little larger than the active area
oled_pcb = [27.5, 27.8];    // module board, held by four posts
led_d = 5.2;                // 5 mm LEDs, press fit
led_pitch = 10;             // centre to centre, green - amber - red
button_d = 12.2;            // 12 mm panel-mount push button
grille_slots = 5;           // buzzer grille: slots 1.5 mm wide
usb_exit = [12, 8];         // power cable exit on the back
// Optional BH1750 light sensor (a GY-302 board, 13.9 x 18.5 mm): a window in the top wall, so it sees the room's
// light and not the screen's or the LEDs' glow; the board is pressed into a frame on the inside, chip on the window.
sensor_window_d = 4;
sensor_pcb = [14.4, 19.0];  // the board's outline with 0.5 mm play (x along the wall, z into the case)
sensor_frame = 2;           // the frame's rails stand this far from the wall

board_size = board == "zero" ? [65, 30] : [85, 56];
inner = [max(board_size[0], 70) + 2 * clearance, max(board_size[1], 40) + 2 * clearance, height];
outer = [inner[0] + 2 * wall, inner[1] + 2 * wall, inner[2] + wall];   // open at the back, a lid closes it

// For tests and the README: the numbers that matter.
echo("outer", outer[0], outer[1], outer[2]);
echo("oled_window", oled_window[0], oled_window[1]);
echo("led_d", led_d, "led_pitch", led_pitch);
echo("sensor_window_d", sensor_window_d);

oled_centre = [outer[0] * 0.38, outer[1] * 0.5];
led_x = outer[0] * 0.8;
$fn = 32;

module oled_cut() { translate([-oled_window[0] / 2, -oled_window[1] / 2, -0.01]) cube([oled_window[0], oled_window[1], wall + 0.02]); }
module led_cut() { translate([0, 0, -0.01]) cylinder(d = led_d, h = wall + 0.02); }
// Through the top wall (along y), centred at the origin of x and z.
module sensor_cut() { rotate([-90, 0, 0]) translate([0, 0, -0.01]) cylinder(d = sensor_window_d, h = wall + 0.02); }
sensor_at = [outer[0] * 0.25, wall + sensor_pcb[1] / 2 + 1];   // x, z: above the OLED, near the front

module shell() {
  difference() {
    cube(outer);
    translate([wall, wall, wall]) cube([inner[0], inner[1], inner[2] + 1]);
    translate([oled_centre[0], oled_centre[1], 0]) oled_cut();
    for (i = [-1 : 1]) translate([led_x, outer[1] / 2 + i * led_pitch, 0]) led_cut();
    translate([led_x, outer[1] * 0.18, -0.01]) cylinder(d = button_d, h = wall + 0.02);
    for (i = [0 : grille_slots - 1])   // buzzer grille, top right
      translate([outer[0] * 0.66 + i * 3, outer[1] * 0.72, -0.01]) cube([1.5, 10, wall + 0.02]);
    translate([outer[0] - wall - 0.01, outer[1] / 2 - usb_exit[0] / 2, outer[2] - usb_exit[1]])
      cube([wall + 0.02, usb_exit[0], usb_exit[1] + 0.01]);
    translate([sensor_at[0], outer[1] - wall, sensor_at[1]]) sensor_cut();
  }
  // The light sensor's frame: two rails along z either side of the board, one below it (the front side).
  translate([sensor_at[0], outer[1] - wall, sensor_at[1]]) {
    for (side = [-1, 1])
      translate([side * (sensor_pcb[0] / 2 + 0.5) - 0.5, -sensor_frame, -sensor_pcb[1] / 2 - 1])
        cube([1, sensor_frame, sensor_pcb[1] + 1]);
    translate([-sensor_pcb[0] / 2 - 1, -sensor_frame, -sensor_pcb[1] / 2 - 1]) cube([sensor_pcb[0] + 2, sensor_frame, 1]);
  }
  // OLED posts (M2 self-tapping), Pi standoffs.
  for (dx = [-1, 1], dy = [-1, 1])
    translate([oled_centre[0] + dx * (oled_pcb[0] / 2 - 2.5), oled_centre[1] + dy * (oled_pcb[1] / 2 - 2.5), wall])
      difference() { cylinder(d = 4.5, h = 3); cylinder(d = 1.8, h = 3.1); }
}

if (part == "oled_window") oled_cut();
else if (part == "led_hole") led_cut();
else if (part == "sensor_window") sensor_cut();
else if (part == "sensor_window_in_case")   // what of the case is left in the window: nothing, for the tests
  intersection() { shell(); translate([sensor_at[0], outer[1] - wall, sensor_at[1]]) sensor_cut(); }
else shell();
