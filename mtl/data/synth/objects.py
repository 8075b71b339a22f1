"""Builders of street objects out of boxes, cylinders and ellipsoids, at plausible real-world sizes.

Each builder takes the random generator and a ground placement and returns its parts. Sizes follow
typical European street furniture and vehicles (a car ≈ 4.3 × 1.8 × 1.5 m, a person ≈ 1.75 m …),
so object size is a usable depth cue.
"""

from __future__ import annotations

import numpy as np

from mtl.data.classes import CLASS_ID
from mtl.data.synth.materials import Facade, Foliage, Lamps, Paneled, SignFace, Solid
from mtl.data.synth.parts import Part, Placement
from mtl.data.synth.shapes import Box, Cylinder, Ellipsoid

ROAD, SIDEWALK, BUILDING, WALL, FENCE, POLE = (CLASS_ID[n] for n in ("road", "sidewalk", "building", "wall", "fence", "pole"))
LIGHT, SIGN, VEGETATION, TERRAIN = (CLASS_ID[n] for n in ("traffic light", "traffic sign", "vegetation", "terrain"))
PERSON, RIDER, CAR, TRUCK, BUS = (CLASS_ID[n] for n in ("person", "rider", "car", "truck", "bus"))
TRAIN, MOTORCYCLE, BICYCLE = (CLASS_ID[n] for n in ("train", "motorcycle", "bicycle"))

LOD_DISTANCE = 60.0  # metres ahead beyond which objects drop parts smaller than a pixel or two
CAR_PAINT = [(200, 200, 200), (30, 30, 35), (120, 125, 130), (160, 20, 25), (20, 50, 120), (235, 235, 235),
             (80, 90, 60), (170, 140, 90), (60, 60, 70), (200, 170, 30), (100, 30, 40), (40, 80, 90)]
CLOTHES = [(30, 30, 40), (60, 60, 70), (150, 30, 30), (30, 60, 120), (200, 200, 190), (90, 70, 50),
           (40, 90, 60), (180, 150, 100), (120, 40, 100), (20, 20, 20), (220, 120, 40), (100, 110, 140)]
SKIN = [(230, 190, 160), (200, 150, 110), (140, 95, 65), (90, 60, 40), (240, 205, 180)]
LEAVES = [(70, 110, 40), (60, 100, 35), (90, 120, 45), (50, 85, 40), (100, 115, 50)]


def _choice(rng: np.random.Generator, items):
    return items[int(rng.integers(len(items)))]


def _near(place: Placement) -> bool:
    return place.origin[2] < LOD_DISTANCE


def _axles(place: Placement, label: int, radius: float, track: float, axles, color=(25, 25, 25)) -> list[Part]:
    """One cylinder per axle spanning both wheels: under a vehicle body the part between the wheels
    reads as the dark gap under the car, and it costs half the parts of separate wheels."""
    tyre = Solid(color, grain=0.05)
    return [Part(Cylinder(place.at(0, radius, z), radius, track, axis=0, yaw=place.yaw), label, tyre) for z in axles]


def car(rng: np.random.Generator, place: Placement) -> list[Part]:
    """Sedan, hatchback, SUV or van: lower body, glass cabin, two axles (dropped when far)."""
    kind = rng.choice(["sedan", "hatch", "suv", "van"], p=[0.4, 0.3, 0.2, 0.1])
    length = {"sedan": 4.6, "hatch": 4.0, "suv": 4.7, "van": 5.0}[kind] * rng.uniform(0.93, 1.07)
    width = rng.uniform(1.72, 1.92)
    clearance = 0.45 if kind in ("suv", "van") else 0.3
    body_top = clearance + (0.75 if kind != "van" else 1.55)
    cabin_h = {"sedan": 0.5, "hatch": 0.55, "suv": 0.65, "van": 0.45}[kind]
    paint = _choice(rng, CAR_PAINT)
    body_h = body_top - clearance
    parts = [
        Part(Box(place.at(0, clearance + body_h / 2, 0), (width, body_h, length), place.yaw), CAR,
             Paneled(paint, lights=(width / 2, body_h / 2 - 0.3, body_h / 2 - 0.12),
                     band=(body_h / 2 - 0.6, body_h / 2 - 0.1) if kind == "van" else None)),
    ]
    cabin_len = length * (0.5 if kind == "sedan" else 0.62 if kind != "van" else 0.75)
    shift = -0.08 * length if kind == "sedan" else -0.12 * length if kind in ("hatch", "suv") else -0.1 * length
    parts.append(
        Part(Box(place.at(0, body_top + cabin_h / 2, shift), (width * 0.88, cabin_h, cabin_len), place.yaw), CAR,
             Paneled(paint, glass=(25, 30, 38), band=(-cabin_h / 2 - 0.01, cabin_h / 2 - 0.06), pillar=cabin_len / 2))
    )
    if _near(place):
        parts += _axles(place, CAR, 0.33, width - 0.05, (length / 2 - 0.8, -length / 2 + 0.8))
    return parts


def truck(rng: np.random.Generator, place: Placement) -> list[Part]:
    """Cab-over truck with a box body: cab, cargo box, chassis, three axles."""
    cargo_len = rng.uniform(5.0, 8.0)
    cab_len = 2.2
    width = 2.5
    cab_paint, cargo_paint = _choice(rng, CAR_PAINT), _choice(rng, [(230, 230, 225), (200, 40, 30), (40, 60, 140), (210, 200, 180), (90, 95, 100)])
    front = (cab_len + cargo_len + 0.3) / 2
    parts = [
        Part(Box(place.at(0, 1.85, front - cab_len / 2), (width - 0.05, 2.5, cab_len), place.yaw), TRUCK,
             Paneled(cab_paint, band=(0.1, 1.1), lights=(width / 2, -1.05, -0.85))),
        Part(Box(place.at(0, 2.35, front - cab_len - 0.3 - cargo_len / 2), (width, 3.3, cargo_len), place.yaw), TRUCK,
             Paneled(cargo_paint)),
        Part(Box(place.at(0, 0.75, 0), (width - 0.5, 0.35, cab_len + cargo_len), place.yaw), TRUCK, Solid((40, 40, 40))),
    ]
    axles = (front - 1.2, front - cab_len - 0.3 - cargo_len * 0.75, front - cab_len - 0.3 - cargo_len * 0.75 - 1.3)
    return parts + _axles(place, TRUCK, 0.52, width - 0.1, axles)


def bus(rng: np.random.Generator, place: Placement) -> list[Part]:
    """City bus: one long box with a window band and door pillars."""
    length = rng.uniform(10.5, 13.0)
    paint = _choice(rng, [(230, 200, 30), (200, 30, 30), (30, 80, 160), (235, 235, 230), (40, 130, 70), (230, 120, 20)])
    body = Part(Box(place.at(0, 1.8, 0), (2.55, 3.0, length), place.yaw), BUS,
                Paneled(paint, glass=(35, 45, 55), band=(-0.45, 1.1), lights=(1.275, -1.1, -0.9), pillar=1.6))
    return [body] + _axles(place, BUS, 0.5, 2.4, (length / 2 - 2.5, -length / 2 + 3.0))


def tram(rng: np.random.Generator, place: Placement) -> list[Part]:
    """Tram (class train): two to four cars joined by narrow bellows, with a pantograph on the roof.
    It starts at the placement and extends along the placement's forward direction."""
    cars = int(rng.integers(2, 5))
    car_len = rng.uniform(7.0, 10.0)
    paint = _choice(rng, [(200, 30, 40), (240, 240, 235), (30, 90, 170), (240, 190, 30), (60, 140, 80)])
    material = Paneled(paint, glass=(35, 45, 55), band=(-0.3, 1.0), lights=(1.2, -1.2, -1.0), pillar=1.5)
    parts: list[Part] = []
    for k in range(cars):
        z = car_len / 2 + k * (car_len + 0.6)
        parts.append(Part(Box(place.at(0, 2.0, z), (2.4, 3.2, car_len), place.yaw), TRAIN, material))
        if k:
            parts.append(Part(Box(place.at(0, 1.9, z - car_len / 2 - 0.3), (2.0, 2.8, 0.7), place.yaw), TRAIN,
                              Solid((50, 50, 50))))
    parts.append(Part(Box(place.at(0, 3.95, car_len / 2), (1.4, 0.5, 0.08), place.yaw), TRAIN, Solid((60, 60, 60))))
    return parts


def person(rng: np.random.Generator, place: Placement, label: int = PERSON, seated: bool = False,
           helmet: bool = False) -> list[Part]:
    """A walking (or seated) person: two legs, torso, two arms, head with hair or a helmet."""
    height = rng.uniform(1.55, 1.95) if not seated else rng.uniform(1.6, 1.9)
    s = height / 1.75
    shirt = Solid(_choice(rng, CLOTHES), grain=0.1, offset=rng.uniform(0, 256))
    trousers = Solid(_choice(rng, CLOTHES), grain=0.1, offset=rng.uniform(0, 256))
    skin = Solid(_choice(rng, SKIN), grain=0.05)
    near = _near(place)
    parts: list[Part] = []
    if seated:  # legs bent: thighs forward along the frame, shins down to the pedals
        hip = 0.0
        for side in (-1, 1):
            parts.append(Part(Cylinder(place.at(side * 0.12 * s, hip + 0.0, 0.22 * s), 0.075 * s, 0.42 * s, axis=2, yaw=place.yaw), label, trousers))
            parts.append(Part(Cylinder(place.at(side * 0.13 * s, hip - 0.25 * s, (0.36 + side * 0.05) * s), 0.065 * s, 0.5 * s, axis=1, yaw=place.yaw), label, trousers))
        torso_y, lean = hip + 0.33 * s, 0.12 * s
    else:
        hip = 0.47 * height
        stride = rng.uniform(-0.15, 0.15)
        if near:
            for side in (-1, 1):
                parts.append(Part(Cylinder(place.at(side * 0.1 * s, hip / 2, side * stride), 0.075 * s, hip, axis=1, yaw=place.yaw), label, trousers))
        else:
            parts.append(Part(Cylinder(place.at(0, hip / 2, 0), 0.16 * s, hip, axis=1, yaw=place.yaw), label, trousers))
        torso_y, lean = hip + 0.17 * height, 0.0
    torso_half = 0.17 * height
    parts.append(Part(Ellipsoid(place.at(0, torso_y, lean), (0.2 * s, torso_half * 1.05, 0.13 * s), place.yaw), label, shirt))
    arm_len = 0.33 * height
    for side in (-1, 1) if near else ():
        if seated:  # arms reach forward to the handlebar
            arm = Cylinder(place.at(side * 0.22 * s, torso_y + 0.1 * s, lean + 0.25 * s), 0.045 * s, 0.5 * s, axis=2, yaw=place.yaw)
        else:
            arm = Cylinder(place.at(side * 0.25 * s, torso_y + torso_half - arm_len / 2 - 0.03, 0.0), 0.045 * s, arm_len, axis=1, yaw=place.yaw)
        parts.append(Part(arm, label, shirt))
    head_y = torso_y + torso_half + 0.13 * s
    parts.append(Part(Ellipsoid(place.at(0, head_y, lean * 1.3), (0.085 * s, 0.11 * s, 0.1 * s), place.yaw), label, skin))
    if not near:
        return parts
    if helmet:
        cover = Solid(_choice(rng, [(20, 20, 20), (220, 220, 220), (200, 30, 30), (30, 60, 150)]), grain=0.03)
        parts.append(Part(Ellipsoid(place.at(0, head_y + 0.02 * s, lean * 1.3), (0.14 * s, 0.15 * s, 0.15 * s), place.yaw), label, cover))
    else:
        hair = Solid(_choice(rng, [(30, 20, 15), (80, 50, 30), (160, 120, 70), (20, 20, 20), (120, 110, 100)]), grain=0.1)
        parts.append(Part(Ellipsoid(place.at(0, head_y + 0.04 * s, lean * 1.3 - 0.02), (0.09 * s, 0.085 * s, 0.1 * s), place.yaw), label, hair))
    return parts


def bicycle(rng: np.random.Generator, place: Placement) -> list[Part]:
    """Bicycle frame and wheels; the rider (if any) is built separately and labelled rider."""
    frame = Solid(_choice(rng, [(30, 30, 30), (180, 30, 30), (30, 70, 150), (200, 200, 200), (40, 110, 60)]), grain=0.05)
    r = 0.34
    parts = _axles(place, BICYCLE, r, 0.05, (0.53, -0.53), color=(30, 30, 30))
    parts += [
        Part(Box(place.at(0, 0.8, 0.05), (0.05, 0.05, 0.62), place.yaw), BICYCLE, frame),
        Part(Box(place.at(0, 0.58, -0.22), (0.05, 0.5, 0.05), place.yaw), BICYCLE, frame),
        Part(Box(place.at(0, 0.62, 0.45), (0.05, 0.6, 0.05), place.yaw), BICYCLE, frame),
        Part(Box(place.at(0, 0.4, -0.38), (0.04, 0.04, 0.34), place.yaw), BICYCLE, frame),
        Part(Box(place.at(0, 0.95, 0.45), (0.5, 0.04, 0.04), place.yaw), BICYCLE, frame),
        Part(Box(place.at(0, 0.9, -0.25), (0.1, 0.04, 0.22), place.yaw), BICYCLE, Solid((20, 20, 20))),
    ]
    return parts


def motorcycle(rng: np.random.Generator, place: Placement) -> list[Part]:
    """Motorcycle: fat wheels, engine block, tank and seat, handlebar."""
    paint = Solid(_choice(rng, [(20, 20, 20), (200, 30, 30), (30, 60, 160), (220, 220, 220), (230, 140, 20)]), grain=0.05)
    parts = _axles(place, MOTORCYCLE, 0.31, 0.13, (0.72, -0.72))
    parts += [
        Part(Box(place.at(0, 0.52, 0.0), (0.35, 0.42, 0.9), place.yaw), MOTORCYCLE, Solid((60, 60, 65))),
        Part(Box(place.at(0, 0.85, 0.05), (0.32, 0.22, 0.95), place.yaw), MOTORCYCLE, paint),
        Part(Box(place.at(0, 1.05, 0.55), (0.7, 0.05, 0.05), place.yaw), MOTORCYCLE, Solid((30, 30, 30))),
        Part(Box(place.at(0, 0.85, 0.62), (0.06, 0.45, 0.06), place.yaw), MOTORCYCLE, Solid((150, 150, 150))),
    ]
    return parts


def rider_on(rng: np.random.Generator, place: Placement, vehicle: str) -> list[Part]:
    """A rider (class rider) seated on a bicycle or motorcycle (classes bicycle / motorcycle)."""
    ride = bicycle(rng, place) if vehicle == "bicycle" else motorcycle(rng, place)
    seat_place = Placement(*place.at(0, 0.98, -0.15 if vehicle == "bicycle" else -0.2), place.yaw)
    return ride + person(rng, seat_place, label=RIDER, seated=True, helmet=vehicle == "motorcycle" or rng.random() < 0.4)


def pole(place: Placement, height: float, radius: float, color=(130, 130, 128)) -> Part:
    return Part(Cylinder(place.at(0, height / 2, 0), radius, height, axis=1), POLE, Solid(color, grain=0.08))


def street_lamp(rng: np.random.Generator, place: Placement, reach: float) -> list[Part]:
    """Lamp post with an arm reaching over the road (``reach`` metres along the placement's right)."""
    height = rng.uniform(6.0, 9.0)
    color = _choice(rng, [(130, 130, 128), (60, 70, 65), (90, 90, 95)])
    parts = [pole(place, height, rng.uniform(0.08, 0.13), color)]
    parts.append(Part(Box(place.at(reach / 2, height - 0.05, 0), (abs(reach), 0.1, 0.1), place.yaw), POLE, Solid(color)))
    parts.append(Part(Box(place.at(reach, height - 0.2, 0), (0.35, 0.18, 0.6), place.yaw), POLE, Solid((180, 180, 175))))
    return parts


def traffic_light(rng: np.random.Generator, place: Placement, overhang: float = 0.0) -> list[Part]:
    """Signal pole with one or two light heads facing -z (towards an approaching camera), optionally
    on a mast arm of ``overhang`` metres over the road."""
    height = rng.uniform(3.0, 4.0) if overhang == 0 else rng.uniform(5.5, 6.5)
    parts = [pole(place, height, 0.1, (80, 85, 80))]
    lit = int(rng.integers(3))
    heads = [(0.0, height - 0.6)] if overhang == 0 else [(overhang, height - 0.7), (overhang * 0.5, height - 0.7)]
    if overhang:
        parts.append(Part(Box(place.at(overhang / 2, height - 0.1, 0), (abs(overhang), 0.14, 0.14), place.yaw), POLE, Solid((80, 85, 80))))
    elif rng.random() < 0.8:  # a repeater head at eye level (RARE_CLASSES: was 0.5)
        heads.append((0.0, height - 1.9))
    for right, y in heads:
        center = place.at(right, y, -0.2)
        parts.append(Part(Box(center, (0.34, 0.95, 0.28), place.yaw), LIGHT, Lamps(lit, 0.475)))
    if overhang == 0 and rng.random() < 0.5:  # a head for the cross traffic, seen from the side
        side = float(rng.choice([-1.0, 1.0]))
        parts.append(Part(Box(place.at(0.25 * side, height - 0.6, 0.0), (0.34, 0.95, 0.28), place.yaw + side * np.pi / 2),
                          LIGHT, Lamps(2 - lit, 0.475)))
    return parts


def traffic_sign(rng: np.random.Generator, place: Placement) -> list[Part]:
    """Sign post with one or two plates (round, square or triangular)."""
    height = rng.uniform(2.4, 3.3)
    parts = [pole(place, height, 0.04, (150, 150, 150))]
    plates = 1 if rng.random() < 0.6 else 2
    face_yaw = place.yaw + (0.0 if rng.random() < 0.8 else rng.choice([-1.2, 1.2]))
    for k in range(plates):
        size = rng.uniform(0.55, 0.8)
        shape = rng.choice(["circle", "square", "triangle", "rect"])
        face, border = _choice(rng, [((30, 80, 170), (240, 240, 240)), ((240, 240, 240), (200, 20, 20)),
                                     ((250, 210, 30), (30, 30, 30)), ((240, 240, 240), (30, 30, 30)),
                                     ((30, 120, 60), (240, 240, 240))])
        w = size * (1.6 if shape == "rect" else 1.0)
        y = height - size / 2 - k * (size + 0.1)
        center = place.at(0, y, -0.05)
        parts.append(Part(Box(center, (w, size, 0.04), face_yaw), SIGN, SignFace(face, border, w / 2, size / 2, shape),
                          cutout=_plate_cutout(shape, w / 2, size / 2)))
    return parts


def _plate_cutout(shape: str, hw: float, hh: float):
    if shape == "circle":
        return lambda p: (p[:, 0] / hw) ** 2 + (p[:, 1] / hh) ** 2 <= 1.0
    if shape == "triangle":  # point down, like a give-way sign
        return lambda p: np.abs(p[:, 0]) / hw <= (p[:, 1] + hh) / (2 * hh)
    return None


def tree(rng: np.random.Generator, place: Placement, scale: float = 1.0) -> list[Part]:
    """Trunk plus a crown of two to four overlapping ellipsoids (all class vegetation)."""
    trunk_h = rng.uniform(1.8, 3.5) * scale
    crown = rng.uniform(1.6, 3.2) * scale
    bark = Solid((85, 70, 55), grain=0.2, scale=8.0)
    leaves = Foliage(_choice(rng, LEAVES), rng.uniform(0, 256))
    parts = [Part(Cylinder(place.at(0, trunk_h / 2 + 0.3, 0), rng.uniform(0.12, 0.25) * scale, trunk_h + 0.6), VEGETATION, bark)]
    tall = rng.uniform(1.0, 1.6)
    clumps = int(rng.integers(2, 4)) if _near(place) else 1
    for k in range(clumps):
        offset = rng.normal(0, 0.35 * crown, 3) if k else np.zeros(3)
        center = place.at(offset[0], trunk_h + crown * tall * 0.9 + 0.5 * offset[1], offset[2])
        radii = crown * (rng.uniform(0.65, 0.9) if k else 1.0) * np.array([1.0, tall, 1.0])
        parts.append(Part(Ellipsoid(center, radii), VEGETATION, leaves))
    return parts


def bush(rng: np.random.Generator, place: Placement) -> list[Part]:
    leaves = Foliage(_choice(rng, LEAVES), rng.uniform(0, 256))
    parts = []
    for _ in range(int(rng.integers(1, 4))):
        r = rng.uniform(0.4, 1.1)
        off = rng.normal(0, 0.5, 2)
        parts.append(Part(Ellipsoid(place.at(off[0], r * 0.6, off[1]), (r, r * rng.uniform(0.6, 1.0), r)), VEGETATION, leaves))
    return parts


def hedge(rng: np.random.Generator, center, size) -> Part:
    return Part(Box(center, size), VEGETATION, Foliage(_choice(rng, LEAVES), rng.uniform(0, 256)))


def building(rng: np.random.Generator, center, size) -> Part:
    """A block: box from the ground up with a facade on its vertical faces."""
    return Part(Box(center, size), BUILDING, Facade(rng, size[1] / 2))


def wall(rng: np.random.Generator, center, size) -> Part:
    color = _choice(rng, [(170, 165, 155), (140, 130, 120), (190, 180, 160), (120, 120, 120), (150, 95, 75)])
    return Part(Box(center, size), WALL, Solid(color, grain=0.25, scale=3.0, offset=rng.uniform(0, 256)))


def fence(rng: np.random.Generator, center, size) -> Part:
    """A fence along the longer horizontal axis of ``size``: metal bars or wooden planks (cut out)."""
    along = 2 if size[2] >= size[0] else 0
    if rng.random() < 0.5:
        color, spacing, fill = (110, 115, 110), rng.uniform(0.12, 0.25), 0.35
    else:
        color, spacing, fill = (140, 105, 70), rng.uniform(0.12, 0.2), 0.75
    top = size[1] / 2

    def keep(p: np.ndarray) -> np.ndarray:
        bar = (p[:, along] % spacing) < spacing * fill
        rail = (np.abs(p[:, 1] - top + 0.08) < 0.05) | (np.abs(p[:, 1] + top - 0.25) < 0.05)
        return bar | rail

    return Part(Box(center, size), FENCE, Solid(color, grain=0.15), cutout=keep, casts_shadow=False)
